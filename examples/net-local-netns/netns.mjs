// In a network namespace of its own: a bridge, a TAP attached to it and a port forward made with LocalOps, checked
// with ip and nft, then removed, and the namespace with them. Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { LocalOps } from '@my-hypervisor/net-local';

if (process.getuid?.() !== 0) {
  console.log('skipped: needs root to create a network namespace (run it with sudo)');
  process.exit(0);
}
const netns = `myhv-example-${process.pid}`;
const inNetns = (...argv) => execFileSync('ip', ['netns', 'exec', netns, ...argv], { encoding: 'utf8' });
const forward = { protocol: 'tcp', hostPort: 8080, guestIp: '10.77.0.10', guestPort: 80 };

execFileSync('ip', ['netns', 'add', netns]);
const ops = new LocalOps({ netns });
try {
  await ops.ensureBridge({ name: 'exbr0', address: '10.77.0.1/24' });
  await ops.createTap({ name: 'extap0', bridge: 'exbr0' }); // attached and up (NO-CARRIER until a VMM opens it)
  await ops.addPortForward(forward);
  assert.match(inNetns('ip', '-o', 'addr', 'show', 'dev', 'exbr0'), /inet 10\.77\.0\.1\/24/);
  assert.match(inNetns('ip', '-o', 'link', 'show', 'master', 'exbr0'), /extap0: <[^>]*\bUP\b/);
  assert.match(
    inNetns('nft', 'list', 'map', 'inet', 'myhv', 'forwards'),
    /tcp \. 8080 : 10\.77\.0\.10 \. 80/,
  );
  console.log(`made in ${netns}: bridge exbr0, TAP extap0 on it, forward tcp 8080 -> 10.77.0.10:80`);

  await ops.removePortForward(forward);
  await ops.deleteTap('extap0');
  assert.doesNotMatch(inNetns('nft', 'list', 'map', 'inet', 'myhv', 'forwards'), /8080/);
  assert.doesNotMatch(inNetns('ip', '-o', 'link', 'show'), /extap0/);
  console.log('removed the forward and the TAP');
} finally {
  await ops.close();
  execFileSync('ip', ['netns', 'del', netns]); // takes the bridge and the nft table with it
}
console.log(`removed ${netns}`);
