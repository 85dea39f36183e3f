export { isTempFile, syncDirectory, writeFileAtomic } from './atomic-file.js';
export { type FollowFileOptions, followFile } from './file-follower.js';
export { hypervisorDeviceProblem } from './hypervisor-device.js';
export { OutputTail, type ReadFileTailOptions, readFileTail } from './output-tail.js';
export {
  isProcessAlive,
  listPids,
  type ProcStat,
  parseProcStat,
  processStartTime,
  readCmdline,
  readProcStat,
} from './process-identity.js';
export { raceSignal } from './race-signal.js';
export { VERSION } from './version.js';
export { Wakeup } from './wakeup.js';
