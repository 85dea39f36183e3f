// Writes docs/cli.md from the command tree (`pnpm --filter @my-hypervisor/cli docs`).
import { writeFile } from 'node:fs/promises';
import { renderCliReference } from '../src/reference.js';

const target = new URL('../../../docs/cli.md', import.meta.url);
await writeFile(target, renderCliReference());
console.log(`wrote ${target.pathname}`);
