/* apiserver/scope.h -- what a log or stats route names: the grid, stack, service or node of
 * its path, read from the router's params and checked to exist, for apiserver/logs.c and
 * apiserver/stats.c. */
#ifndef APISERVER_SCOPE_H
#define APISERVER_SCOPE_H

struct req;

/* The route shapes, by their params. */
enum scope_kind {
    SCOPE_GRID,    /* /v1/grids/:grid/...                        */
    SCOPE_STACK,   /* /v1/stacks/:grid/:stack/...                */
    SCOPE_SERVICE, /* /v1/services/:grid/:stack/:svc/...         */
    SCOPE_NODE,    /* /v1/containers/:grid/:node/:name/...       */
};

/* Borrowed from the params; NULL where the shape has no such part. */
struct scope {
    const char *grid;
    const char *stack;     /* STACK, SERVICE; "null" is the stack-less services' pseudo-stack */
    const char *service;   /* SERVICE: the service's name in its stack */
    const char *node;      /* NODE */
    const char *container; /* NODE: the container's name (it may be gone: not checked) */
};

/* Read params into *s and check that the grid exists and then the stack (unless "null"),
 * service or node: 1, or 0 after answering the request (the grid's own error, 404
 * "Stack not found" / "Service not found" / "Node <name> not found", or the store's
 * error). */
int scope_parse(struct req *r, enum scope_kind kind, char **params, struct scope *s);

#endif
