import { runNetOpsConformance } from '@my-hypervisor/net-ops/testing';
import { afterAll } from 'vitest';
import { LocalOps } from '../../src/index.js';
import { createNetns, deleteAllNetns, deleteNetns, kernelSkipReason } from './netns.js';

// Every test gets a fresh namespace, so the kit's names (kitbr0, kittap0, …) never meet the host or each other.
const reasons = {
  nft: await kernelSkipReason(['nft']),
  iptables: await kernelSkipReason(['iptables-save', 'iptables-restore']),
};

afterAll(deleteAllNetns);

for (const nat of ['nft', 'iptables'] as const) {
  runNetOpsConformance(`LocalOps with the ${nat} driver, in a throwaway network namespace`, {
    factory: async () => {
      const ops = new LocalOps({ netns: await createNetns(), nat });
      return { bridge: ops, tap: ops, nat: ops };
    },
    cleanup: async ({ bridge }) => {
      const ops = bridge as LocalOps;
      await ops.close();
      if (ops.netns) await deleteNetns(ops.netns);
    },
    skip: reasons[nat] ?? false,
    timeout: 60_000,
  });
}
