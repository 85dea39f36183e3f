/**
 * A "billion laughs" YAML document of `levels` anchors: `l0` holds ten strings, each later one lists the one before
 * ten times, so `key: *l<levels - 1>` would expand to 10^levels strings.
 */
export function billionLaughs(levels = 10, key = 'name'): string {
  const lines = [`l0: &l0 [${Array(10).fill('"lol"').join(', ')}]`];
  for (let i = 1; i < levels; i++)
    lines.push(
      `l${i}: &l${i} [${Array(10)
        .fill(`*l${i - 1}`)
        .join(', ')}]`,
    );
  lines.push(`${key}: *l${levels - 1}`);
  return `${lines.join('\n')}\n`;
}
