import { basename } from 'node:path';
import { defineProject, mergeConfig, type ViteUserConfig } from 'vitest/config';

/**
 * The export condition that points every workspace package at its TypeScript sources, so tests and typechecks
 * run without a prior build. Published packages never see it: it is not one Node or bundlers set.
 */
export const sourceCondition = '@my-hypervisor/source';

const conditions = [sourceCondition, 'module', 'node', 'development|production'];

/** The vitest project config every package starts from. `.ci/run` sets MYHV_TEST_REPORT_DIR to sum results. */
export function defineMyhvProject(root: string, overrides: ViteUserConfig = {}): ViteUserConfig {
  const reportDir = process.env.MYHV_TEST_REPORT_DIR;
  const base = defineProject({
    resolve: { conditions },
    ssr: { resolve: { conditions, externalConditions: [sourceCondition] } },
    test: {
      include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
      testTimeout: 30_000,
      hookTimeout: 30_000,
      ...(reportDir
        ? {
            reporters: ['default', 'json'],
            outputFile: { json: `${reportDir}/${basename(root)}.json` },
          }
        : {}),
    },
  });
  return mergeConfig(base, overrides);
}
