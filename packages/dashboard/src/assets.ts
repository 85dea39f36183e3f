import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

/** One static file, held in memory with its gzip form (the whole front end is a few hundred KiB). */
export interface Asset {
  readonly body: Buffer;
  readonly gzip: Buffer | undefined;
  readonly type: string;
  readonly etag: string;
  /** Hashed names never change content: cached for a year. */
  readonly immutable: boolean;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};

/**
 * Where the built front end is: `dist/ui` of this package. The same relative path works from the sources
 * (`src/`), from the package's `dist/` and from the `myhv` one-file bundle, whose build copies it to `dist/ui`.
 */
export function defaultUiDir(): string {
  return fileURLToPath(new URL('../dist/ui/', import.meta.url));
}

/** Reads the built front end: `/` (index.html) and `/assets/NAME`. Throws naming the directory when it is missing. */
export function loadAssets(dir: string): ReadonlyMap<string, Asset> {
  const index = join(dir, 'index.html');
  if (!existsSync(index)) {
    throw Object.assign(
      new Error(
        `the dashboard's front end is missing: ${index} (@my-hypervisor/dashboard's build makes it in its dist/ui; the myhv bundle carries a copy in dist/ui beside myhv.js, so copy that directory along with the file)`,
      ),
      { code: 'ENOENT', path: index },
    );
  }
  const assets = new Map<string, Asset>();
  assets.set('/', asset(readFileSync(index), '.html', false));
  const assetsDir = join(dir, 'assets');
  if (existsSync(assetsDir)) {
    for (const name of readdirSync(assetsDir)) {
      const ext = extname(name);
      if (!TYPES[ext]) continue;
      assets.set(`/assets/${name}`, asset(readFileSync(join(assetsDir, name)), ext, true));
    }
  }
  return assets;
}

function asset(body: Buffer, ext: string, immutable: boolean): Asset {
  const compressible = ext !== '.png' && ext !== '.woff2' && body.length > 512;
  return {
    body,
    gzip: compressible ? gzipSync(body, { level: 9 }) : undefined,
    type: TYPES[ext]!,
    etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
    immutable,
  };
}
