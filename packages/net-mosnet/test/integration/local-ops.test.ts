import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { LocalOps } from '@my-hypervisor/net-local';
import { type NetOpsUnderTest, runNetOpsConformance } from '@my-hypervisor/net-ops/testing';
import { afterAll } from 'vitest';
import { MosnetOps } from '../../src/index.js';
import { createMosnetServer, type MosnetServer } from '../../src/server/index.js';
import { socketDir } from '../support/sockets.js';

const run = promisify(execFile);
const prefix = `myhv-mosnet-${process.pid}`;
let counter = 0;
const namespaces = new Set<string>();

async function addNetns(): Promise<string> {
  const name = `${prefix}-${counter++}`;
  await run('ip', ['netns', 'add', name]);
  namespaces.add(name);
  await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

async function deleteNetns(name: string): Promise<void> {
  await run('ip', ['netns', 'delete', name]).catch(() => undefined);
  namespaces.delete(name);
}

/** Why the real-kernel run cannot happen here, or undefined when it can. */
async function skipReason(): Promise<string | undefined> {
  if (process.getuid?.() !== 0)
    return 'it needs root (it creates network namespaces, bridges, TAPs and nft rules)';
  for (const binary of ['ip', 'nft']) {
    const found = await run('sh', ['-c', `command -v ${binary}`]).then(
      () => true,
      () => false,
    );
    if (!found) return `\`${binary}\` is not installed`;
  }
  try {
    await deleteNetns(await addNetns());
  } catch (error) {
    return `a network namespace cannot be created here (${(error as Error).message.trim()})`;
  }
  return undefined;
}

afterAll(async () => {
  for (const name of [...namespaces]) await deleteNetns(name);
});

interface Environment {
  readonly netns: string;
  readonly local: LocalOps;
  readonly server: MosnetServer;
  readonly remove: () => Promise<void>;
}
const environments = new WeakMap<object, Environment>();

// client → socket → createMosnetServer → LocalOps → the kernel, in a fresh network namespace per test.
runNetOpsConformance('MosnetOps over the socket to createMosnetServer(new LocalOps({ netns, nat: "nft" }))', {
  skip: (await skipReason()) ?? false,
  timeout: 60_000,
  factory: async (): Promise<NetOpsUnderTest> => {
    const netns = await addNetns();
    const dir = await socketDir();
    const local = new LocalOps({ netns, nat: 'nft' });
    const server = await createMosnetServer({ ops: local, socketPath: dir.path() });
    const ops = await MosnetOps.connect({ socketPath: dir.path(), timeoutMs: 30_000 });
    environments.set(ops, { netns, local, server, remove: dir.remove });
    return { bridge: ops, tap: ops, nat: ops };
  },
  cleanup: async ({ bridge }: NetOpsUnderTest) => {
    await (bridge as MosnetOps).close();
    const environment = environments.get(bridge);
    if (!environment) return;
    await environment.server.close();
    await environment.local.close();
    await deleteNetns(environment.netns);
    await environment.remove();
  },
});
