import { defineConfig } from 'tsup';

// One self-contained file: workspace packages and their dependencies are inlined, so `node dist/myhv.js`
// needs nothing but Node at run time. Sources are bundled through the source condition, not other dist/ files.
export default defineConfig({
  entry: { myhv: 'src/main.ts' },
  format: ['esm'],
  target: 'node20',
  platform: 'node',
  bundle: true,
  noExternal: [/.*/],
  splitting: false,
  sourcemap: true,
  clean: true,
  dts: false,
  banner: {
    // Bundled CommonJS dependencies may call require(); give them one.
    js: "#!/usr/bin/env node\nimport { createRequire as __myhvCreateRequire } from 'node:module';\nconst require = __myhvCreateRequire(import.meta.url);",
  },
  esbuildOptions(options) {
    options.conditions = ['@my-hypervisor/source', 'node', 'import', 'module', 'default'];
  },
});
