import { defineMyhvProject } from '../../vitest.shared.js';

export default defineMyhvProject(import.meta.dirname, {
  test: { globalSetup: ['test/global-setup.ts'], testTimeout: 120_000, hookTimeout: 60_000 },
});
