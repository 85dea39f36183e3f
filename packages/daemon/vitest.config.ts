import { defineMyhvProject } from '../../vitest.shared.js';

// Whole VMs (simulator processes) through a daemon: twenty at once on a loaded 2-core machine take a while.
export default defineMyhvProject(import.meta.dirname, { test: { testTimeout: 120_000 } });
