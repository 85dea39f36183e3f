import { runNetOpsConformance } from '@my-hypervisor/net-ops/testing';
import { createMapOps } from './map-ops.js';

runNetOpsConformance('MapOps', {
  factory: () => {
    const ops = createMapOps();
    return { bridge: ops, tap: ops, nat: ops };
  },
});
