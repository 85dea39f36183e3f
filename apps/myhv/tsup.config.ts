import { readFile } from 'node:fs/promises';
import { builtinModules, createRequire } from 'node:module';
import { dirname } from 'node:path';
import { defineConfig } from 'tsup';
import { ETCD_PROTO_DIR, intermediateDir, packBundle } from './scripts/pack-bundle.js';

// One self-contained file: workspace packages and their dependencies are inlined, so `node dist/myhv.js`
// needs nothing but Node at run time. Sources are bundled through the source condition, not other dist/ files.
//
// Start-up time matters (`myhv vm ls` runs in loops in scripts; see bench/). tsup writes a CommonJS bundle, which
// scripts/pack-bundle.ts packs into dist/myhv.js with V8's code cache. Two plugins keep start-up work down:
// - node built-ins that a bare `node` has not loaded yet are loaded on first use of one of their exports (commander
//   alone would otherwise load child_process, net and streams at every start);
// - zod's ~45 message locales are dropped: only the English one is ever configured.

/** Built-ins every Node process has loaded before user code runs: requiring them costs nothing. */
const preloaded = new Set([
  'async_hooks',
  'buffer',
  'events',
  'fs',
  'module',
  'path',
  'process',
  'querystring',
  'timers',
  'url',
  'util',
]);

const require = createRequire(import.meta.url);

/** The export names of a built-in worth loading lazily, or undefined (preloaded, or not a plain object). */
function lazyBuiltinNames(name: string): string[] | undefined {
  if (preloaded.has(name)) return undefined;
  const exported: unknown = require(`node:${name}`);
  if (typeof exported !== 'object' || exported === null) return undefined;
  // Non-enumerable ones too: an export the bundle uses must never read as undefined.
  return Object.getOwnPropertyNames(exported);
}

/** A module whose exports are getters that require the built-in on first use. */
function lazyBuiltinModule(name: string, names: readonly string[]): string {
  const getters = names.map(
    (n) => `${JSON.stringify(n)}:{enumerable:true,get:()=>load()[${JSON.stringify(n)}]}`,
  );
  return `let m;const load=()=>m??=require(${JSON.stringify(`node:${name}`)});module.exports=Object.defineProperties({},{${getters.join(',')}});`;
}

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
  // Built-ins are resolved by the lazy-node-builtins plugin below, which needs to see their `node:` prefix.
  removeNodeProtocol: false,
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
        const builtins = new Set(builtinModules);
        build.onResolve({ filter: /^(node:)?[a-z0-9_/]+$/ }, (args) => {
          const name = args.path.replace(/^node:/, '');
          if (!builtins.has(name)) return undefined;
          // The lazy module's own require is the real built-in.
          return args.namespace !== 'lazy-builtin' && lazyBuiltinNames(name)
            ? { path: name, namespace: 'lazy-builtin' }
            : { path: `node:${name}`, external: true };
        });
        build.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, (args) => ({
          contents: lazyBuiltinModule(args.path, lazyBuiltinNames(args.path) ?? []),
          loader: 'js',
        }));
      },
    },
    {
      // protobufjs (under etcd3) does `require("long")` and checks `Long.isLong`: with the `import` condition that
      // would be long's ES module namespace, and 64-bit ids (etcd's leases) would lose precision. Its CommonJS entry.
      name: 'long-as-commonjs',
      setup(build) {
        build.onResolve({ filter: /^long$/ }, (args) =>
          args.kind === 'require-call' ? { path: createRequire(args.importer).resolve('long') } : undefined,
        );
      },
    },
    {
      // etcd3 reads its .proto files relative to its own file; in the bundle they sit beside dist/myhv.js.
      name: 'etcd3-proto-path',
      setup(build) {
        build.onLoad({ filter: /etcd3[\\/]lib[\\/]connection-pool\.js$/ }, async (args) => {
          const text = await readFile(args.path, 'utf8');
          // biome-ignore lint/suspicious/noTemplateCurlyInString: etcd3's source text, matched as it is
          const from = '`${__dirname}/../proto/rpc.proto`';
          if (!text.includes(from)) throw new Error(`${args.path}: etcd3 no longer loads ${from}`);
          return {
            contents: text.replace(from, `\`\${__dirname}/${ETCD_PROTO_DIR}/rpc.proto\``),
            loader: 'js',
          };
        });
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
