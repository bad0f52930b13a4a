-- The admin list (`GET /connections`) pages in id order; filtered by status or by provider alone,
-- it had no index in that order, so a page meant reading (and sorting) every connection of that
-- status or provider: a million active connections for `?status=active`. These serve each filter
-- in id order, a page at a time. (Workspace filters use connections_workspace_provider: a
-- workspace holds few connections.)
CREATE INDEX connections_status_id ON connections (status, id);
CREATE INDEX connections_provider_id ON connections (provider_id, id);
