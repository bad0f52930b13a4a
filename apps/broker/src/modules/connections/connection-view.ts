import * as z from 'zod';
import { parseConnectionConfig } from '../providers/connection-params.ts';
import { type ConnectionStatus, STATUSES } from './connection-status.ts';
import { connectionConfigView } from './token-view.ts';

/**
 * A connection as the admin API shows it: `GET /connections` (each item), `GET /connections/{id}`
 * and `POST /admin/v1/connections/{id}/refresh`. Never a credential: the schema is also a filter,
 * and the store's rows it is built from hold none.
 */
export const connectionView = z
  .object({
    id: z.string(),
    workspace_id: z.string(),
    provider_id: z.string(),
    provider_name: z.string(),
    status: z.enum(STATUSES),
    scopes: z.array(z.string()),
    connection_config: connectionConfigView,
    access_expires_at: z.string().nullable(),
    last_refreshed_at: z.string().nullable(),
    last_error: z.string().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .meta({ id: 'Connection' });

export type ConnectionView = z.infer<typeof connectionView>;

/** The columns a view is made of (a list row, or a full row with its provider's name). */
export interface ConnectionViewRow {
  id: string;
  workspace_id: string;
  provider_id: string;
  provider_name: string;
  status: string;
  scopes: string;
  connection_config: string | null;
  access_expires_at: number | string | null;
  last_refreshed_at: number | string | null;
  last_error: string | null;
  created_at: number | string;
  updated_at: number | string;
}

const iso = (ms: number | string) => new Date(Number(ms)).toISOString();

export function connectionViewOf(r: ConnectionViewRow): ConnectionView {
  return {
    id: r.id,
    workspace_id: r.workspace_id,
    provider_id: r.provider_id,
    provider_name: r.provider_name,
    status: r.status as ConnectionStatus,
    scopes: JSON.parse(r.scopes) as string[],
    connection_config: parseConnectionConfig(r.connection_config),
    access_expires_at: r.access_expires_at === null ? null : iso(r.access_expires_at),
    last_refreshed_at: r.last_refreshed_at === null ? null : iso(r.last_refreshed_at),
    last_error: r.last_error,
    created_at: iso(r.created_at),
    updated_at: iso(r.updated_at),
  };
}
