import { dirname } from 'node:path';
import { defineConfig } from 'tsup';
import { intermediateDir, packBundle } from './scripts/pack-bundle.js';

// One self-contained file: workspace packages and their dependencies are inlined, so `node dist/myhv.js`
// needs nothing but Node at run time. Sources are bundled through the source condition, not other dist/ files.
//
// Start-up time matters (`myhv vm ls` runs in loops in scripts; see bench/). tsup writes a CommonJS bundle, which
// scripts/pack-bundle.ts packs into dist/myhv.js with V8's code cache. Two plugins keep start-up work down:
// - node built-ins are required when the module using them is first initialised, not all at start-up;
// - zod's ~45 message locales are dropped: only the English one is ever configured.
export default defineConfig({
  entry: { myhv: 'src/main.ts' },
  outDir: intermediateDir,
  outExtension: () => ({ js: '.cjs' }),
  format: ['cjs'],
  target: 'node20',
  platform: 'node',
  bundle: true,
  noExternal: [/.*/],
  splitting: false,
  sourcemap: false,
  clean: true,
  dts: false,
  minifyWhitespace: true,
  minifySyntax: true,
  // The bundle runs from dist/myhv.js; the only user of import.meta.url (chv-client's simulatorCommand) is
  // never called there, the app passes its own simulator command.
  define: { 'import.meta.url': '__myhvSelfUrl' },
  banner: { js: "const __myhvSelfUrl = require('node:url').pathToFileURL(__filename).href;" },
  esbuildOptions(options) {
    options.conditions = ['@my-hypervisor/source', 'node', 'import', 'module', 'default'];
  },
  esbuildPlugins: [
    {
      name: 'lazy-node-builtins',
      setup(build) {
        build.onResolve({ filter: /^node:/ }, (args) =>
          args.namespace === 'lazy-builtin'
            ? { path: args.path, external: true }
            : { path: args.path, namespace: 'lazy-builtin' },
        );
        build.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, (args) => ({
          contents: `module.exports = require(${JSON.stringify(args.path)});`,
          loader: 'js',
        }));
      },
    },
    {
      name: 'zod-english-only',
      setup(build) {
        build.onLoad({ filter: /zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, (args) => ({
          contents: "export { default as en } from './en.js';",
          resolveDir: dirname(args.path),
          loader: 'js',
        }));
      },
    },
  ],
  onSuccess: async () => packBundle(),
});
