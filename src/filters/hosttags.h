/*
 * hosttags - expansion of fail2ban's regex tags (<HOST>, <ADDR>, <F-ID/>,
 * <SKIPLINES>, <F-NAME>...</F-NAME>) into named groups, in Python re syntax.
 */
#ifndef MXJAIL_FILTERS_HOSTTAGS_H
#define MXJAIL_FILTERS_HOSTTAGS_H

/* Returns the expanded regex (caller frees). usedns_no: <HOST> then matches
 * addresses only (usedns = no). *nskiplines receives the number of <SKIPLINES>. */
char *hosttags_expand(const char *re, int usedns_no, unsigned *nskiplines);

#endif
