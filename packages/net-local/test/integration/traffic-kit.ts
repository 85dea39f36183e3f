import type { ResultPromise } from 'execa';
import { execa } from 'execa';
import { inNetns } from './netns.js';

// Real TCP between namespaces: a server that names itself and the address it saw, and a client that prints it.

const serverScript = `
const net = require('node:net');
const server = net.createServer((c) => c.end(process.argv[1] + ' saw ' + c.remoteAddress + '\\n'));
server.listen(Number(process.argv[2]), '0.0.0.0', () => console.log('listening'));`;

const clientScript = `
const net = require('node:net');
const c = net.connect({ host: process.argv[1], port: Number(process.argv[2]), timeout: 1500, ...(process.argv[3] ? { localAddress: process.argv[3] } : {}) });
let data = '';
c.on('data', (d) => { data += d; });
c.on('end', () => { process.stdout.write(data); process.exit(0); });
c.on('timeout', () => { console.error('timeout'); process.exit(2); });
c.on('error', (e) => { console.error(e.code); process.exit(1); });`;

/** What a TCP client in `netns` got from host:port (from `from`, if given): the server's line, or its error. */
export async function connect(netns: string, host: string, port: number, from?: string): Promise<string> {
  const args = ['-e', clientScript, host, String(port), ...(from ? [from] : [])];
  const result = await inNetns(netns, process.execPath, args, { reject: false });
  return result.exitCode === 0 ? result.stdout.trim() : `failed: ${result.stderr.trim()}`;
}

/** Starts a TCP server in `netns`; wrapped, because a subprocess is a thenable an async function would await. */
export async function startServer(
  netns: string,
  name: string,
  port: number,
): Promise<{ process: ResultPromise }> {
  const server = execa('ip', [
    'netns',
    'exec',
    netns,
    process.execPath,
    '-e',
    serverScript,
    name,
    String(port),
  ]);
  await new Promise<void>((resolve, reject) => {
    server.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('listening')) resolve();
    });
    server.catch(reject);
  });
  return { process: server };
}

/** A veth from `host` into `guest` (named eth0 there) with `address`, default route via `gateway` if given. */
export async function plugGuest(
  host: string,
  hostSide: string,
  guest: string,
  address: string,
  gateway?: string,
) {
  await execa('ip', [
    '-n',
    host,
    'link',
    'add',
    hostSide,
    'type',
    'veth',
    'peer',
    'name',
    'eth0',
    'netns',
    guest,
  ]);
  await execa('ip', ['-n', guest, 'addr', 'add', address, 'dev', 'eth0']);
  await execa('ip', ['-n', guest, 'link', 'set', 'eth0', 'up']);
  if (gateway) await execa('ip', ['-n', guest, 'route', 'add', 'default', 'via', gateway]);
}
