import { createMemoryNetOps, type NetOpsCapabilities } from '@my-hypervisor/net-ops';
import { type NetOpsUnderTest, runNetOpsConformance } from '@my-hypervisor/net-ops/testing';
import { MosnetOps } from '../src/index.js';
import { createMosnetServer, type MosnetServer } from '../src/server/index.js';
import { socketDir } from './support/sockets.js';

/** client → socket → server → memory ops, a fresh server and client per test. */
function throughTheSocket(capabilities?: Partial<NetOpsCapabilities>) {
  const environments = new WeakMap<object, { server: MosnetServer; remove: () => Promise<void> }>();
  return {
    factory: async (): Promise<NetOpsUnderTest> => {
      const dir = await socketDir();
      const server = await createMosnetServer({
        ops: createMemoryNetOps(capabilities ? { capabilities } : {}),
        socketPath: dir.path(),
      });
      const ops = await MosnetOps.connect({ socketPath: dir.path() });
      environments.set(ops, { server, remove: dir.remove });
      return { bridge: ops, tap: ops, nat: ops };
    },
    cleanup: async ({ bridge }: NetOpsUnderTest) => {
      await (bridge as MosnetOps).close();
      const environment = environments.get(bridge);
      await environment?.server.close();
      await environment?.remove();
    },
  };
}

runNetOpsConformance(
  'MosnetOps over the socket to createMosnetServer(createMemoryNetOps())',
  throughTheSocket(),
);

// The same daemon without the optional methods and params: capabilities come from rpc.discover, so the kit's
// UNSUPPORTED branches run too.
runNetOpsConformance(
  'MosnetOps over the socket to a server whose ops list nothing and take no multi-queue, owner or IPv6',
  throughTheSocket({
    listBridgePorts: false,
    listPortForwards: false,
    multiQueue: false,
    tapOwner: false,
    ipv6: false,
  }),
);
