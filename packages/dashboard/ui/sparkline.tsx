const WIDTH = 120;
const HEIGHT = 28;

/**
 * A small line chart of `values` (oldest first), scaled to their maximum (at least `floor`). An image with `label`
 * as its name: the numbers themselves are always written beside it.
 */
export function Sparkline({
  values,
  label,
  floor = 1,
}: {
  values: readonly number[];
  label: string;
  floor?: number;
}) {
  const max = Math.max(floor, ...values);
  const step = values.length > 1 ? WIDTH / (values.length - 1) : 0;
  const points = values
    .map((value, i) => `${(i * step).toFixed(1)},${(HEIGHT - 1 - (value / max) * (HEIGHT - 2)).toFixed(1)}`)
    .join(' ');
  return (
    <svg
      class="sparkline"
      viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
      width={WIDTH}
      height={HEIGHT}
      role="img"
      aria-label={label}
      preserveAspectRatio="none"
    >
      <line class="baseline" x1="0" y1={HEIGHT - 0.5} x2={WIDTH} y2={HEIGHT - 0.5} />
      {values.length > 1 && <polyline points={points} />}
    </svg>
  );
}
