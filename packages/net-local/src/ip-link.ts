import { NetOpsError } from '@my-hypervisor/net-ops';
import { z } from 'zod';

const addressSchema = z.looseObject({
  family: z.string(),
  local: z.string(),
  prefixlen: z.number(),
  scope: z.string().optional(),
});

const linkSchema = z.looseObject({
  ifname: z.string(),
  flags: z.array(z.string()).default([]),
  mtu: z.number(),
  master: z.string().optional(),
  linkinfo: z
    .looseObject({
      info_kind: z.string().optional(),
      info_data: z
        .looseObject({
          type: z.string().optional(),
          multi_queue: z.boolean().optional(),
          // A user's or group's name instead of the id when the name is known.
          user: z.union([z.number(), z.string()]).optional(),
          group: z.union([z.number(), z.string()]).optional(),
        })
        .optional(),
      info_slave_kind: z.string().optional(),
      info_slave_data: z.looseObject({ hairpin: z.boolean().optional() }).optional(),
    })
    .optional(),
  addr_info: z.array(addressSchema).optional(),
});

/** What we need to know about one interface, from `ip -json -details link|addr show`. */
export interface LinkInfo {
  readonly name: string;
  /** `bridge`, `tun`, `veth`, …; undefined for devices without a kind (loopback, physical NICs). */
  readonly kind: string | undefined;
  /** For `tun` devices: `tap` or `tun`. */
  readonly tunType: string | undefined;
  readonly multiQueue: boolean;
  readonly mtu: number;
  readonly up: boolean;
  readonly master: string | undefined;
  /** For ports: the kind of their master (`bridge`, `bond`, …). */
  readonly slaveKind: string | undefined;
  /** For bridge ports: whether hairpin mode is on. */
  readonly hairpin: boolean | undefined;
  /**
   * For TAPs: the uid/gid owning it (-1 each for none, as the kernel says), when `ip` printed both as numbers;
   * undefined when it printed a name instead (then sysfs has the ids) or nothing.
   */
  readonly tunOwner: { readonly uid: number; readonly gid: number } | undefined;
  readonly addresses: readonly { family: string; local: string; prefixLength: number; scope?: string }[];
}

export function isTap(link: LinkInfo): boolean {
  return link.kind === 'tun' && link.tunType === 'tap';
}

function toLinkInfo(raw: z.infer<typeof linkSchema>): LinkInfo {
  const data = raw.linkinfo?.info_data;
  // No owner is printed as no field at all: -1 to the kernel.
  const uid = data?.user ?? -1;
  const gid = data?.group ?? -1;
  return {
    name: raw.ifname,
    kind: raw.linkinfo?.info_kind,
    tunType: raw.linkinfo?.info_data?.type,
    multiQueue: raw.linkinfo?.info_data?.multi_queue ?? false,
    mtu: raw.mtu,
    up: raw.flags.includes('UP'),
    master: raw.master,
    slaveKind: raw.linkinfo?.info_slave_kind,
    hairpin: raw.linkinfo?.info_slave_data?.hairpin,
    tunOwner:
      raw.linkinfo?.info_kind === 'tun' && typeof uid === 'number' && typeof gid === 'number'
        ? { uid, gid }
        : undefined,
    addresses: (raw.addr_info ?? []).map((a) => ({
      family: a.family,
      local: a.local,
      prefixLength: a.prefixlen,
      ...(a.scope === undefined ? {} : { scope: a.scope }),
    })),
  };
}

/** Parses the JSON array `ip -json -details link show …` (or `addr show`) printed. */
export function parseLinks(output: unknown): LinkInfo[] {
  const parsed = z.array(linkSchema).safeParse(output);
  if (!parsed.success) {
    throw new NetOpsError('BACKEND_FAILURE', 'ip printed JSON of an unexpected shape', {
      cause: parsed.error,
    });
  }
  return parsed.data.map(toLinkInfo);
}

/** Parses the JSON text `ip -json` printed (BACKEND_FAILURE if it is not JSON). */
export function parseIpJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new NetOpsError('BACKEND_FAILURE', 'ip printed output that is not JSON', { cause: error });
  }
}

/** The single interface of a `show dev NAME` output. */
export function parseLink(output: unknown, name: string): LinkInfo {
  const link = parseLinks(output).find((l) => l.name === name);
  if (!link) throw new NetOpsError('BACKEND_FAILURE', `ip did not describe ${name}`);
  return link;
}
