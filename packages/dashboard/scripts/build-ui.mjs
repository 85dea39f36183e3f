// Builds the dashboard's front end (ui/) into dist/ui: index.html plus hashed files under dist/ui/assets, served
// as /assets/…. No inline script or style anywhere (the page's CSP forbids both), nothing fetched from the net.
// The console view (xterm) is a chunk loaded on demand, with its own stylesheet, so the other pages never load it.
// Run from packages/dashboard: `node scripts/build-ui.mjs`.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = join(root, 'dist/ui');
const assetsDir = join(outDir, 'assets');
/** ADR 015's budget for the list view's JavaScript, gzipped (without the xterm chunk). */
const APP_JS_BUDGET = 60 * 1024;

const common = {
  absWorkingDir: root,
  bundle: true,
  minify: true,
  outdir: assetsDir,
  entryNames: '[name]-[hash]',
  chunkNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  target: ['chrome110', 'firefox110', 'safari16'],
  metafile: true,
  logLevel: 'warning',
  legalComments: 'eof',
};

/** `dist/ui/assets/x.js` → `/assets/x.js`. */
const urlOf = (output) => `/assets/${relative('dist/ui/assets', output)}`;

async function main() {
  await rm(outDir, { recursive: true, force: true });
  await mkdir(assetsDir, { recursive: true });

  // The console's stylesheet first: the app's code is given its hashed name.
  const consoleCss = await build({ ...common, entryPoints: { console: 'ui/console.css' } });
  const consoleCssFile = only(consoleCss.metafile, (output) => output.endsWith('.css'));

  const app = await build({
    ...common,
    entryPoints: { app: 'ui/app.tsx' },
    format: 'esm',
    splitting: true,
    platform: 'browser',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    tsconfig: 'ui/tsconfig.json',
    define: { __CONSOLE_CSS__: JSON.stringify(urlOf(consoleCssFile)) },
  });
  const outputs = app.metafile.outputs;
  const entry = only(app.metafile, (_, output) => output.entryPoint === 'ui/app.tsx');
  const appCss = outputs[entry].cssBundle;
  if (!appCss) throw new Error('build-ui: the app has no stylesheet');
  // Shared chunks the entry imports statically: preloaded, and counted in the budget.
  const staticImports = outputs[entry].imports
    .filter((i) => i.kind === 'import-statement')
    .map((i) => i.path);

  await writeFile(join(outDir, 'index.html'), indexHtml({ js: entry, css: appCss, preload: staticImports }));

  const appFiles = [entry, ...staticImports];
  const lazyJs = Object.keys(outputs).filter((o) => o.endsWith('.js') && !appFiles.includes(o));
  const appJs = await sizes(appFiles);
  const lazy = await sizes(lazyJs);
  const css = await sizes([appCss]);
  const consoleCssSize = await sizes([consoleCssFile]);
  console.log(
    `build-ui: app JS ${kb(appJs.raw)} (${kb(appJs.gzip)} gzip), app CSS ${kb(css.raw)} (${kb(css.gzip)} gzip); ` +
      `console chunk JS ${kb(lazy.raw)} (${kb(lazy.gzip)} gzip), CSS ${kb(consoleCssSize.raw)} (${kb(consoleCssSize.gzip)} gzip) → dist/ui`,
  );
  if (appJs.gzip > APP_JS_BUDGET) {
    throw new Error(
      `build-ui: the app's JavaScript is ${kb(appJs.gzip)} gzipped, over the ${kb(APP_JS_BUDGET)} budget`,
    );
  }
}

function only(metafile, match) {
  const found = Object.entries(metafile.outputs)
    .filter(([path, output]) => match(path, output))
    .map(([path]) => path);
  if (found.length !== 1)
    throw new Error(`build-ui: expected one output, found ${found.join(', ') || 'none'}`);
  return found[0];
}

function indexHtml({ js, css, preload }) {
  const lines = [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta name="color-scheme" content="light dark">',
    '<meta name="referrer" content="no-referrer">',
    '<title>myhv</title>',
    // No favicon request (and no 404 for it): an empty data: icon, which img-src allows.
    '<link rel="icon" href="data:,">',
    `<link rel="stylesheet" href="${urlOf(css)}">`,
    ...preload.map((path) => `<link rel="modulepreload" href="${urlOf(path)}">`),
    `<script type="module" src="${urlOf(js)}"></script>`,
    '</head>',
    '<body>',
    '<div id="app"></div>',
    '<noscript><p>The myhv dashboard needs JavaScript.</p></noscript>',
    '</body>',
    '</html>',
    '',
  ];
  return lines.join('\n');
}

async function sizes(files) {
  let raw = 0;
  let gzip = 0;
  for (const file of files) {
    const bytes = await readFile(join(root, file));
    raw += bytes.length;
    gzip += gzipSync(bytes, { level: 9 }).length;
  }
  return { raw, gzip };
}

function kb(bytes) {
  return `${(bytes / 1024).toFixed(1)} KB`;
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
