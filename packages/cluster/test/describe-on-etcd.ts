import { afterAll, beforeAll, describe } from 'vitest';
import { EtcdCluster, etcdSkipReason } from '../src/testing/index.js';

/**
 * A suite on its own 3-member etcd (started before, stopped after); skipped, with the reason printed, where etcd is
 * missing. `etcd()` is the running cluster.
 */
export function describeOnEtcd(title: string, suite: (etcd: () => EtcdCluster) => void): void {
  const skip = etcdSkipReason();
  if (skip) console.warn(`skipped: ${title}, because ${skip}`);
  describe.skipIf(skip !== undefined)(title, () => {
    let etcd: EtcdCluster | undefined;
    beforeAll(async () => {
      etcd = await EtcdCluster.start();
    }, 30_000);
    afterAll(async () => {
      await etcd?.stop();
    });
    suite(() => etcd!);
  });
}
