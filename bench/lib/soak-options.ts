/** The soak's command line (bench/soak.ts): durations as "90", "90s", "2m", "1h30m". */
import { parseArgs } from 'node:util';

/** "90", "90s", "2m", "1h", "1h30m" → seconds. */
function seconds(text: string): number {
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text);
  if (m === null || text === '') throw new Error(`not a duration: ${text} (e.g. 90s, 2m, 1h)`);
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
}

/** The soak's settings, checked: every number positive (the jitter may be 0); `report` a path or undefined. */
export function soakOptions(argv: string[]) {
  const { values: o } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string', default: '1h' },
      interval: { type: 'string', default: '30s' },
      rate: { type: 'string', default: '200' },
      connections: { type: 'string', default: '50' },
      'consent-every': { type: 'string', default: '5s' },
      'access-ttl': { type: 'string', default: '30' },
      'refresh-margin': { type: 'string', default: '30' },
      'refresh-jitter': { type: 'string', default: '5' },
      replicas: { type: 'string', default: '2' },
      'max-in-flight': { type: 'string', default: '1024' },
      report: { type: 'string' },
    },
  });
  const cfg = {
    duration_s: seconds(o.duration),
    interval_s: seconds(o.interval),
    rate: Number(o.rate),
    connections: Number(o.connections),
    consent_every_s: seconds(o['consent-every']),
    access_ttl_s: Number(o['access-ttl']),
    refresh_margin_s: Number(o['refresh-margin']),
    refresh_jitter_s: Number(o['refresh-jitter']),
    replicas: Number(o.replicas),
    max_in_flight: Number(o['max-in-flight']),
  };
  for (const [name, value] of Object.entries(cfg))
    if (!Number.isFinite(value) || value < 0 || (value === 0 && name !== 'refresh_jitter_s'))
      throw new Error(`${name}: not a positive number`);
  return { cfg, report: o.report };
}
