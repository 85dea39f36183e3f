import { defineMyhvProject } from '../../vitest.shared.js';

// Two projects: every test in-process, and the e2e suites again with a myhvd started per sandbox
// (MYHV_E2E_DAEMON=1, see test/myhv.ts), so that each command also runs through the daemon. Suites that are about
// the daemon itself, that take the host down under it (reboot) or that build their own world (demo) run
// in-process only.
const inProcessOnly = [
  'test/daemon-routing.e2e.test.ts',
  'test/reboot.e2e.test.ts',
  'test/demo.e2e.test.ts',
  // Hostile state directories and umasks, built before any command: a daemon started first would have made them.
  'test/trust.e2e.test.ts',
];

export default defineMyhvProject(import.meta.dirname, {
  test: {
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    projects: [
      { extends: true, test: { name: 'in-process' } },
      // CI's second leg (Node 24, scripts/test-node24) runs the in-process project only: the daemon project proves
      // routing, not the Node version, and would add ~8 minutes to it.
      ...(process.env.MYHV_E2E_IN_PROCESS_ONLY === '1'
        ? []
        : [
            {
              extends: true as const,
              test: {
                name: 'through myhvd',
                include: ['test/**/*.e2e.test.ts'],
                exclude: inProcessOnly,
                env: { MYHV_E2E_DAEMON: '1' },
              },
            },
          ]),
    ],
  },
});
