import * as z from 'zod';
import { bool } from './env-types.ts';

/** The hosted pages (modules/connect, the capture form): session lifetime and the operator's branding, part of `envSchema`. */
export const connectEnv = {
  NEXUS_CONNECT_SESSION_TTL_SECONDS: z.coerce
    .number()
    .int()
    .min(60)
    .max(3600)
    .default(900)
    .describe(
      'How long a connect session (`POST /v1/connect-sessions`) can be opened and used before it expires. Its URL works once: picking a provider uses it up.',
    ),
  NEXUS_CONNECT_BRAND_NAME: z
    .string()
    .trim()
    .min(1)
    .max(80)
    .default('Nexus')
    .describe(
      'The name the hosted pages (connect sessions and the credential capture form) show as the service the user is connecting accounts to.',
    ),
  NEXUS_CONNECT_BRAND_LOGO_URL: z
    .url({ protocol: /^https?$/ })
    .max(2048)
    .optional()
    .describe(
      'A logo shown at the top of the hosted pages (an https URL; http only outside production). Its origin is the only one besides the broker the pages load anything from (`img-src`). Unset: no logo.',
    ),
  NEXUS_CONNECT_BRAND_COLOR: z
    .string()
    .regex(/^#[0-9a-fA-F]{6}$/, 'a colour as #rrggbb')
    .default('#1f6feb')
    .describe(
      'The accent colour of the hosted pages (`#rrggbb`): buttons and highlights. Text on it is black or white, whichever contrasts more.',
    ),
  NEXUS_CONNECT_VERIFIER_URL: z
    .url({ protocol: /^https?$/ })
    .max(2048)
    .optional()
    .describe(
      "The application's verifier page (https; http only outside production). Set, a consent that asks for it (`verify: true` on request-connection or a connect session, or every consent with `NEXUS_CONNECT_VERIFIER_REQUIRED`) does not activate at the provider's callback: the browser is sent here with a single-use `flow_id`, and the application's server, which knows who is signed in, confirms with `POST /v1/connect/confirm {flow_id, user_id}`. A different user fails the connection (`user_mismatch`) and revokes the grant at the provider. Unset: no confirmation step (docs/security.md, decision 0017).",
    ),
  NEXUS_CONNECT_VERIFIER_REQUIRED: bool
    .default(false)
    .describe(
      'Every consent goes through the confirmation step of `NEXUS_CONNECT_VERIFIER_URL` (required with it), whatever the request says; `verify: false` is refused. Recommended in production once the application implements its verifier page.',
    ),
};
