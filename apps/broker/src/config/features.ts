import type { Config } from './config.types.ts';

/** A feature the configuration leaves off, and the variable that turns it on. */
export interface FeatureOff {
  readonly feature: string;
  /** The variable to set to turn it on. */
  readonly variable: string;
  /** What a caller or an operator notices while it is off. */
  readonly effect: string;
}

/**
 * The features this configuration leaves off, for the start-up log and `nexus doctor`: a first
 * start should say what is not there instead of leaving it to the first failing request.
 * `userSecretsKey`: whether a user-secrets key was found (environment or key file); it is resolved
 * with the other keys, after the configuration is loaded.
 */
export function featuresOff(config: Config, userSecretsKey: boolean): FeatureOff[] {
  const off: FeatureOff[] = [];
  if (!userSecretsKey)
    off.push({
      feature: 'user secrets',
      variable: 'USER_SECRETS_KEY',
      effect: '/api/v2/secrets answers 501 user_secrets_not_configured',
    });
  if (!config.rateLimits.enabled)
    off.push({
      feature: 'rate limits',
      variable: 'RATE_LIMIT_ENABLED',
      effect: 'no request is counted or limited',
    });
  else if (config.redisUrl === undefined)
    off.push({
      feature: 'shared rate-limit counters',
      variable: 'REDIS_URL',
      effect: 'each process counts alone: with several brokers a client gets the limit once per broker',
    });
  if (config.grpc === undefined)
    off.push({ feature: 'gRPC', variable: 'GRPC_PORT', effect: 'the agent API is served over HTTP only' });
  return off;
}

/** One line per feature: "user secrets: off (set USER_SECRETS_KEY to turn on); …". */
export const describeFeatureOff = (f: FeatureOff) =>
  `${f.feature}: off (set ${f.variable} to turn on); ${f.effect}`;
