export {
  aptPackageSource,
  type BuildImageOptions,
  type BuildImageResult,
  type BuildProgress,
  type BuildStep,
  buildImage,
  DEFAULT_DEB_CACHE,
  DEFAULT_KERNEL_PACKAGE,
  type PackageFetchOptions,
  type PackageSource,
} from './build.js';
export {
  type BzImagePayload,
  type ExtractVmlinuxOptions,
  extractVmlinux,
  type PayloadCompression,
} from './bzimage.js';
export * from './core.js';
export { type CpioEntry, type CpioListing, readCpio, type WriteCpioOptions, writeCpio } from './cpio.js';
export {
  type DebianPackage,
  type FetchDebianPackageOptions,
  fetchDebianPackage,
  fetchKernelPackage,
} from './debian.js';
export { initScript } from './init-script.js';
export { type ImageManifest, MANIFEST_VERSION } from './manifest.js';
export { GUEST_MODULES, type KernelModule } from './modules.js';
export {
  type BrokenImage,
  DEFAULT_IMAGE_STORE,
  ImageStore,
  type ImageStoreOptions,
  type StoredImage,
  validateImageName,
} from './store.js';
export { VERSION } from './version.js';
