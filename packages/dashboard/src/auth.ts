import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** The cookie that carries a dashboard session. */
export const SESSION_COOKIE = 'myhv_session';

/** A session the browser proved with its cookie: its id, when it ends, and the CSRF token it must send. */
export interface Session {
  readonly id: string;
  readonly expiresAt: number;
  readonly csrfToken: string;
}

/**
 * Login codes and sessions. A login code is random, used once and short-lived; it is handed out only over the
 * daemon's Unix socket (whose mode decides who may have one). A session is a cookie signed with the dashboard's
 * secret (HMAC-SHA256): `id.expiry.mac`, so sessions outlive a daemon restart and rotating the secret ends them
 * all. The CSRF token is derived from the session id with the same secret, never stored.
 */
export class Sessions {
  readonly #secret: Buffer;
  readonly #codes = new Map<string, number>();
  readonly #codeTtlMs: number;
  readonly #sessionTtlMs: number;
  readonly #now: () => number;

  constructor(secret: Buffer, options: { codeTtlMs: number; sessionTtlMs: number; now?: () => number }) {
    if (secret.length < 32) throw new TypeError('the dashboard secret must be at least 32 bytes');
    this.#secret = secret;
    this.#codeTtlMs = options.codeTtlMs;
    this.#sessionTtlMs = options.sessionTtlMs;
    this.#now = options.now ?? Date.now;
  }

  /** A fresh one-time login code and when it stops working. */
  issueCode(): { code: string; expiresAt: number } {
    this.#dropExpiredCodes();
    const code = randomBytes(24).toString('base64url');
    const expiresAt = this.#now() + this.#codeTtlMs;
    this.#codes.set(code, expiresAt);
    return { code, expiresAt };
  }

  /** Swaps a login code for a session's cookie value; undefined when the code is unknown, used or expired. */
  redeem(code: string): { cookie: string; session: Session } | undefined {
    const expiresAt = this.#codes.get(code);
    if (expiresAt === undefined) return undefined;
    this.#codes.delete(code);
    if (expiresAt < this.#now()) return undefined;
    const id = randomBytes(18).toString('base64url');
    const sessionExpiresAt = this.#now() + this.#sessionTtlMs;
    const body = `${id}.${sessionExpiresAt.toString(36)}`;
    return {
      cookie: `${body}.${this.#mac(`session:${body}`)}`,
      session: { id, expiresAt: sessionExpiresAt, csrfToken: this.#mac(`csrf:${id}`) },
    };
  }

  /** The session a cookie value proves, or undefined (forged, expired, malformed). */
  verify(cookie: string | undefined): Session | undefined {
    if (!cookie) return undefined;
    const parts = cookie.split('.');
    if (parts.length !== 3) return undefined;
    const [id, expiry, mac] = parts as [string, string, string];
    if (!equal(mac, this.#mac(`session:${id}.${expiry}`))) return undefined;
    const expiresAt = Number.parseInt(expiry, 36);
    if (!Number.isSafeInteger(expiresAt) || expiresAt < this.#now()) return undefined;
    return { id, expiresAt, csrfToken: this.#mac(`csrf:${id}`) };
  }

  /** True when `token` is the CSRF token of `session`. */
  checkCsrf(session: Session, token: string | undefined): boolean {
    return token !== undefined && equal(token, session.csrfToken);
  }

  /** Login codes not yet used or expired (for status and tests). */
  get pendingCodes(): number {
    this.#dropExpiredCodes();
    return this.#codes.size;
  }

  #mac(text: string): string {
    return createHmac('sha256', this.#secret).update(text).digest('base64url');
  }

  #dropExpiredCodes(): void {
    const now = this.#now();
    for (const [code, expiresAt] of this.#codes) if (expiresAt < now) this.#codes.delete(code);
  }
}

/** Constant-time comparison of two strings (false for different lengths). */
function equal(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The value of one cookie in a `Cookie` header. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
