#!/usr/bin/env node
// myhvd: the VM manager as a daemon. It is `myhv daemon run` — the same one-file bundle, settings and exit codes —
// under its own name, for systemd units and process lists. `myhvd --help` shows its options.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const bundle = join(dirname(require.resolve('@my-hypervisor/myhv/package.json')), 'dist/myhv.js');
const args = process.argv.slice(2);
const version = args.length === 1 && (args[0] === '--version' || args[0] === '-V');
// The bundle reads its command from argv and its own path from argv[1] (it re-runs itself as the serial relay).
process.argv = [process.argv[0], bundle, ...(version ? ['version'] : ['daemon', 'run', ...args])];
require(bundle);
