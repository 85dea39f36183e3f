// Runs the installed myhv the way a user does, through npx, and checks what --version and --help print.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

const npx = (...args) => execFileSync('npx', ['--no-install', ...args], { encoding: 'utf8' });

const version = npx('myhv', '--version');
assert.match(version, /^myhv \d+\.\d+\.\d+\n$/);
const help = npx('myhv', '--help');
for (const command of ['vm', 'forward', 'net', 'doctor', 'gc', 'demo']) {
  assert.match(help, new RegExp(`^ +${command}\\b`, 'm'), `--help does not list ${command}`);
}
console.log(`${version.trim()}; --help lists vm, forward, net, doctor, gc and demo`);
