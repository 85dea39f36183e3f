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
  // once, so its CPU per process is what counts. One minified file, without zod (it validates bodies against
  // generated JSON Schema, see src/testing/sim-body-check.ts), as CommonJS: Node's ESM loader costs a few ms of
  // CPU more per start than require() does for the same file. Nothing imports this file; the package stays ESM.
  onSuccess: async () => {
    await build({
      entryPoints: ['src/testing/simulator-bin.ts'],
      outfile: 'dist/simulator-bin.cjs',
      bundle: true,
      minify: true,
      format: 'cjs',
      platform: 'node',
      target: 'node20',
      sourcemap: true,
      logLevel: 'error',
    });
  },
});
