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
        .looseObject({ type: z.string().optional(), multi_queue: z.boolean().optional() })
        .optional(),
      info_slave_kind: z.string().optional(),
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
  readonly addresses: readonly { family: string; local: string; prefixLength: number; scope?: string }[];
}

export function isTap(link: LinkInfo): boolean {
  return link.kind === 'tun' && link.tunType === 'tap';
}

function toLinkInfo(raw: z.infer<typeof linkSchema>): LinkInfo {
  return {
    name: raw.ifname,
    kind: raw.linkinfo?.info_kind,
    tunType: raw.linkinfo?.info_data?.type,
    multiQueue: raw.linkinfo?.info_data?.multi_queue ?? false,
    mtu: raw.mtu,
    up: raw.flags.includes('UP'),
    master: raw.master,
    slaveKind: raw.linkinfo?.info_slave_kind,
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
