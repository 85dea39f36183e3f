import { connect } from 'node:net';

/** vhost-user message ids and flags (docs/interop/vhost-user.rst in QEMU). */
export const VHOST_USER_GET_FEATURES = 1;
export const VHOST_USER_VERSION = 0x1;
export const VHOST_USER_REPLY_MASK = 0x4;
export const VHOST_USER_F_PROTOCOL_FEATURES = 1n << 30n;
/** Bit 32 of the feature word: VIRTIO_F_VERSION_1, which every virtio-fs device offers. */
export const VIRTIO_F_VERSION_1 = 1n << 32n;

export interface FeaturesReply {
  readonly request: number;
  readonly flags: number;
  readonly size: number;
  readonly features: bigint;
}

/**
 * Connects as a vhost-user front-end, sends GET_FEATURES (12-byte header: u32 request, u32 flags, u32 size, little
 * endian) and reads the reply header plus the u64 feature word, then disconnects. virtiofsd exits afterwards: it
 * serves one front-end.
 */
export function getVhostUserFeatures(socketPath: string, timeoutMs = 3_000): Promise<FeaturesReply> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let received = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no GET_FEATURES reply within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('connect', () => {
      const header = Buffer.alloc(12);
      header.writeUInt32LE(VHOST_USER_GET_FEATURES, 0);
      header.writeUInt32LE(VHOST_USER_VERSION, 4);
      header.writeUInt32LE(0, 8);
      socket.write(header);
    });
    socket.on('data', (chunk) => {
      received = Buffer.concat([received, chunk]);
      if (received.length < 20) return;
      clearTimeout(timer);
      socket.end();
      resolve({
        request: received.readUInt32LE(0),
        flags: received.readUInt32LE(4),
        size: received.readUInt32LE(8),
        features: received.readBigUInt64LE(12),
      });
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}
