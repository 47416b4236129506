/* Network devices UCX offers, for placing work near them (src/topo). */
#include "ucx.h"

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
