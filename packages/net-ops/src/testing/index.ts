export { VERSION } from '../version.js';
export { expectNetOpsError } from './expect-net-ops-error.js';
export {
  conformanceFixtures,
  hostileInterfaceNames,
  type NetOpsConformanceOptions,
  type NetOpsUnderTest,
  runNetOpsConformance,
} from './run-net-ops-conformance.js';
