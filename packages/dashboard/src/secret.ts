import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync, writeSync } from 'node:fs';

const SECRET_BYTES = 32;

/**
 * The dashboard's signing secret, kept in a file only its owner may read (`<stateDir>/dashboard.secret`, 0600):
 * made on first use, read afterwards. A file another user could read or write, or that is not a plain file of
 * ours, is refused rather than trusted — anyone who can read it can forge a session. Delete it to end every
 * session (a new one is made at the next start).
 */
export function loadOrCreateSecret(path: string): Buffer {
  let fd: number;
  try {
    fd = openSync(
      path,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    );
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return readSecret(path);
  }
  try {
    const secret = randomBytes(SECRET_BYTES);
    writeSync(fd, secret);
    return secret;
  } finally {
    closeSync(fd);
  }
}

function readSecret(path: string): Buffer {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const stat = fstatSync(fd);
    const uid = process.getuid?.();
    if (!stat.isFile() || (uid !== undefined && stat.uid !== uid) || (stat.mode & 0o077) !== 0) {
      throw Object.assign(
        new Error(
          `${path}: the dashboard secret must be a plain file of this user that nobody else may read or write (mode 0600); delete it and a new one is made`,
        ),
        { code: 'EPERM', path },
      );
    }
    const secret = Buffer.alloc(SECRET_BYTES);
    const read = readSync(fd, secret, 0, SECRET_BYTES, 0);
    if (read !== SECRET_BYTES) {
      throw Object.assign(
        new Error(`${path}: the dashboard secret is truncated; delete it and a new one is made`),
        {
          code: 'EINVAL',
          path,
        },
      );
    }
    return secret;
  } finally {
    closeSync(fd);
  }
}
