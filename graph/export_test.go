package graph

import "net/http"

// ServeEngine serves a gateway request as ServeGateway does, but always on
// the federation engine (no fast path): tests compare the two.
func (h *Handler) ServeEngine(w http.ResponseWriter, r *http.Request, tenant string) {
	h.serveGateway(w, r, tenant, false)
}

// Served returns how many gateway operations the fast path and the engine
// have served.
func (h *Handler) Served() (local, engine int64) {
	return h.servedLocal.Load(), h.servedEngine.Load()
}
