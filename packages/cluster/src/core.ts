// The light part of the package, for code that checks its input before it connects (the CLI's `--host-id`): nothing
// here imports etcd3, and nothing pulls in the code that does.
export { HOST_ID_RULE, isHostId } from './host-id.js';
