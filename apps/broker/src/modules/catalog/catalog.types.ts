/**
 * A catalogue entry as catalog/schema/provider.schema.json describes it (decision 0015). Entries
 * reach the broker only after that schema accepted them (catalog-loader.ts), so these types are
 * what the schema guarantees. Nested shapes are type aliases, so that they are plain JSON objects
 * (`Record<string, unknown>`) to the answer schemas too.
 */

export type CatalogParameter = {
  title: string;
  description?: string;
  pattern: string;
  default?: string;
  example?: string;
};

export type CatalogLearnt = {
  from: 'token_response' | 'api';
  /** With `from: api`: the URL GET with the new access token. */
  url?: string;
  path: string;
  pattern: string;
};

export type CatalogOAuth2 = {
  authorization_url?: string;
  token_url?: string;
  revocation_url?: string;
  userinfo_url?: string;
  issuer?: string;
  discovery?: boolean;
  token_auth_method: 'client_secret_post' | 'client_secret_basic' | 'private_key_jwt';
  pkce: boolean;
  scope_separator?: ' ' | ',' | '+';
  default_scopes?: string[];
  authorize_params?: Record<string, string>;
  refresh: { access_token_expires: boolean; rotating: boolean; refresh_token_expires?: boolean };
  token_response?: Record<string, unknown>;
};

export type CatalogStatic = {
  capture: Record<string, unknown>;
  strategy: { type: string; config: Record<string, string> };
  help?: string;
};

export type CatalogEntry = {
  key: string;
  version: number;
  name: string;
  description?: string;
  categories: string[];
  docs: string;
  source: string;
  auth_type: 'oauth2' | 'api_key' | 'basic_auth' | 'header' | 'query_param' | 'hmac_payload' | 'aws_sigv4';
  parameters?: Record<string, CatalogParameter>;
  learnt?: Record<string, CatalogLearnt>;
  oauth2?: CatalogOAuth2;
  static?: CatalogStatic;
  api?: { base_url: string };
  setup?: { app_settings?: string[]; console_url?: string };
};

/** A file of the catalogue that was not loaded, and why. */
export interface CatalogProblem {
  file: string;
  message: string;
}
