// The light part of the package, for code that runs at every start of a program (the manager's spec checks, the
// CLI's error reports): guest arguments, the ready line, the kernel check and the errors. Nothing here fetches,
// builds or spawns, and nothing pulls in the code that does.
export {
  GuestImageError,
  type GuestImageErrorCode,
  type GuestImageErrorDetails,
  type GuestImageErrorOptions,
  guestImageErrorCodes,
} from './errors.js';
export {
  formatGuestArgs,
  GUEST_ARGS_VERSION,
  type GuestAddress,
  type GuestArgs,
  type GuestShare,
  parseGuestArgs,
  parseReadyLine,
  READY_PREFIX,
  type ReadyLine,
  validateGuestArgs,
} from './guest-args.js';
export {
  checkKernelImage,
  type KernelImageCheck,
  type KernelImageFormat,
  type KernelImageProblem,
} from './kernel-image.js';
