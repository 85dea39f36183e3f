// Writes openrpc.json from the zod schemas; a test fails when the shipped file and the schemas disagree.
import { writeFile } from 'node:fs/promises';
import { buildDaemonOpenrpcDocument } from '../src/openrpc-document.js';

const file = new URL('../openrpc.json', import.meta.url);
await writeFile(file, `${JSON.stringify(buildDaemonOpenrpcDocument(), null, 2)}\n`);
console.log(`wrote ${file.pathname}`);
