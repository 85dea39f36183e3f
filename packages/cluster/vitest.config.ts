import { defineMyhvProject } from '../../vitest.shared.js';

export default defineMyhvProject(import.meta.dirname);
