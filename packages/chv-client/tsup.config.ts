import { build } from 'esbuild';
import { defineConfig } from 'tsup';

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    testing: 'src/testing/index.ts',
  },
  format: ['esm'],
  target: 'node20',
  platform: 'node',
  dts: { entry: { index: 'src/index.ts', testing: 'src/testing/index.ts' } },
  sourcemap: true,
  clean: true,
  // The simulator binary stands in for a VMM that starts in milliseconds, and a manager may spawn a hundred at
  // once: one minified file with zod inlined starts in about two thirds of the time of the same code spread over
  // chunks and node_modules.
  onSuccess: async () => {
    await build({
      entryPoints: ['src/testing/simulator-bin.ts'],
      outfile: 'dist/simulator-bin.js',
      bundle: true,
      minify: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      sourcemap: true,
      logLevel: 'error',
    });
  },
});
