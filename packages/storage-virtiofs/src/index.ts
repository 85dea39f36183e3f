export {
  C_VIRTIOFSD_PATH,
  detectVirtiofsd,
  findVirtiofsd,
  INSTALL_HINT,
  LIBEXEC_VIRTIOFSD_PATH,
  virtiofsdCandidates,
} from './detect-virtiofsd.js';
export { type SharePaths, sharePaths } from './run-dir.js';
export { VERSION } from './version.js';
export { VIRTIOFSD_BACKEND, VirtioFsStorage, type VirtioFsStorageOptions } from './virtiofs-storage.js';
export { buildVirtiofsdArgs, type VirtiofsdArgsInput } from './virtiofsd-args.js';
export {
  parseVirtiofsdInfo,
  type VirtiofsdFlavour,
  type VirtiofsdInfo,
  type VirtiofsdSandbox,
} from './virtiofsd-info.js';
