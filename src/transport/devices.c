/* Network devices UCX offers, for placing work near them (src/topo). */
#include "ucx.h"

#include <stdlib.h>
#include <string.h>
#include <uct/api/uct.h>

size_t terse__tp_net_devices(char (*names)[64], size_t max)
{
    uct_component_h *comps;
    unsigned ncomps;
    size_t n = 0;
    if (uct_query_components(&comps, &ncomps) != UCS_OK)
        return 0;
    for (unsigned c = 0; c < ncomps && n < max; c++) {
        uct_component_attr_t cattr = {.field_mask = UCT_COMPONENT_ATTR_FIELD_MD_RESOURCE_COUNT};
        if (uct_component_query(comps[c], &cattr) != UCS_OK || !cattr.md_resource_count)
            continue;
        uct_md_resource_desc_t mds[cattr.md_resource_count];
        cattr.field_mask = UCT_COMPONENT_ATTR_FIELD_MD_RESOURCES;
        cattr.md_resources = mds;
        if (uct_component_query(comps[c], &cattr) != UCS_OK)
            continue;
        for (unsigned m = 0; m < cattr.md_resource_count && n < max; m++) {
            uct_md_config_t *cfg;
            uct_md_h md;
            uct_tl_resource_desc_t *tls;
            unsigned ntls;
            if (uct_md_config_read(comps[c], NULL, NULL, &cfg) != UCS_OK)
                continue;
            ucs_status_t us = uct_md_open(comps[c], mds[m].md_name, cfg, &md);
            uct_config_release(cfg);
            if (us != UCS_OK)
                continue;
            if (uct_md_query_tl_resources(md, &tls, &ntls) == UCS_OK) {
                for (unsigned t = 0; t < ntls && n < max; t++) {
                    if (tls[t].dev_type != UCT_DEVICE_TYPE_NET || !strcmp(tls[t].dev_name, "lo"))
                        continue;
                    int dup = 0;
                    for (size_t k = 0; k < n && !dup; k++)
                        dup = !strcmp(names[k], tls[t].dev_name);
                    if (!dup) {
                        strncpy(names[n], tls[t].dev_name, 63);
                        names[n][63] = '\0';
                        n++;
                    }
                }
                uct_release_tl_resource_list(tls);
            }
            uct_md_close(md);
        }
    }
    uct_release_component_list(comps);
    return n;
}

int terse__tp_user_net_devices(void)
{
    const char *v = getenv("UCX_NET_DEVICES");
    return v && v[0] && strcmp(v, "all") != 0;
}

/* 1 when @name is an item of the comma-separated @list. */
static int in_list(const char *list, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (n == len && !strncmp(p, name, len))
            return 1;
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

size_t terse__tp_planning_devices(char (*names)[64], size_t max, int *from_user)
{
    const char *v = getenv("UCX_NET_DEVICES");
    *from_user = 0;
    if (!terse__tp_user_net_devices())
        return terse__tp_net_devices(names, max);
    *from_user = 1;
    if (v[0] == '^') { /* everything but these */
        size_t n = terse__tp_net_devices(names, max), kept = 0;
        for (size_t i = 0; i < n; i++) {
            if (in_list(v + 1, names[i]))
                continue;
            if (kept != i)
                memcpy(names[kept], names[i], sizeof(names[i]));
            kept++;
        }
        return kept;
    }
    size_t n = 0;
    for (const char *p = v; *p && n < max;) {
        size_t len = strcspn(p, ",");
        if (len > 0 && len < 64) {
            memcpy(names[n], p, len);
            names[n][len] = '\0';
            n++;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    return n;
}
