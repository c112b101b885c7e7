/* An intrusive, circular, doubly linked list, as the Linux kernel keeps
 * one: the links live inside the listed struct, so listing and unlinking
 * allocate nothing and unlinking is O(1) given the element. */
#ifndef IOMODELS_LIST_H
#define IOMODELS_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list_node {
    struct list_node *prev, *next;
};

/* The struct of type TYPE whose member MEMBER is at PTR. */
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* An empty list is a head linked to itself. */
static inline void list_init(struct list_node *head)
{
    head->prev = head->next = head;
}

static inline bool list_empty(const struct list_node *head)
{
    return head->next == head;
}

/* Adds node at the front (list_add) or the back (list_add_tail). */
static inline void list_add(struct list_node *head, struct list_node *node)
{
    node->prev = head;
    node->next = head->next;
    head->next->prev = node;
    head->next = node;
}

static inline void list_add_tail(struct list_node *head, struct list_node *node)
{
    list_add(head->prev, node);
}

/* Unlinks node and leaves it linked to itself, so a second list_del is harmless. */
static inline void list_del(struct list_node *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    list_init(node);
}

/* Walks the list; the body may list_del (and free) the current node. */
#define list_for_each_safe(node, tmp, head) \
    for ((node) = (head)->next, (tmp) = (node)->next; (node) != (head); (node) = (tmp), (tmp) = (node)->next)

#endif
