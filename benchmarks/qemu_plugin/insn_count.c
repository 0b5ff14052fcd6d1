/*
 * insn_count: a QEMU TCG plugin that counts executed guest instructions, with marks the guest sets.
 *
 * Built against qemu-plugin.h of QEMU 7.2 (plugin API version 1; see README.md beside this file).
 * The guest marks stage boundaries with a system call QEMU does not know (number `magic`, default
 * 0x7e57); QEMU answers it with -ENOSYS, and the plugin sees it first:
 *   syscall(magic, 1, tag)  writes "mark <tag> <instructions so far>"
 *   syscall(magic, 2, tag)  writes "profile <tag>" then "pc <vaddr> <instructions>" for every block
 *                           executed since the last profile (needs profile=on), and zeroes them
 * and at exit "total <instructions>". Lines go to `out=PATH` (flushed at once, so the guest can read
 * its own counts back) or to QEMU's log (stderr).
 *
 * Counts are exact for a single-threaded guest: the inline add is not atomic across vCPUs.
 */
#include <glib.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

typedef struct {
    uint64_t vaddr;
    uint64_t n_insns;
    uint64_t execs;
} Block;

static uint64_t total;
static int64_t magic = 0x7e57;
static bool profile;
static FILE *out;
static GHashTable *blocks; /* (vaddr, n_insns) -> Block */
static GMutex lock;

static void emit(const char *line)
{
    if (out) {
        fputs(line, out);
        fflush(out);
    } else {
        qemu_plugin_outs(line);
    }
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    uint64_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &total, n);
    if (!profile) {
        return;
    }
    uint64_t vaddr = qemu_plugin_tb_vaddr(tb);
    uint64_t key = vaddr ^ (n << 52);
    g_mutex_lock(&lock);
    Block *b = g_hash_table_lookup(blocks, &key);
    if (!b) {
        b = g_new0(Block, 1);
        b->vaddr = vaddr;
        b->n_insns = n;
        uint64_t *k = g_new(uint64_t, 1);
        *k = key;
        g_hash_table_insert(blocks, k, b);
    }
    g_mutex_unlock(&lock);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->execs, 1);
}

static void dump_profile(int64_t tag)
{
    GHashTableIter it;
    gpointer key, value;
    char line[96];
    snprintf(line, sizeof line, "profile %" PRId64 "\n", tag);
    emit(line);
    g_mutex_lock(&lock);
    g_hash_table_iter_init(&it, blocks);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        Block *b = value;
        if (b->execs) {
            snprintf(line, sizeof line, "pc 0x%" PRIx64 " %" PRIu64 "\n", b->vaddr, b->execs * b->n_insns);
            emit(line);
            b->execs = 0;
        }
    }
    g_mutex_unlock(&lock);
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2,
                       uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    char line[96];
    if (num != magic) {
        return;
    }
    if (a1 == 1) {
        snprintf(line, sizeof line, "mark %" PRId64 " %" PRIu64 "\n", (int64_t)a2, total);
        emit(line);
    } else if (a1 == 2 && profile) {
        dump_profile((int64_t)a2);
    }
}

static void at_exit(qemu_plugin_id_t id, void *p)
{
    char line[64];
    snprintf(line, sizeof line, "total %" PRIu64 "\n", total);
    emit(line);
    if (out) {
        fclose(out);
        out = NULL;
    }
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        g_auto(GStrv) kv = g_strsplit(argv[i], "=", 2);
        if (!kv[0] || !kv[1]) {
            fprintf(stderr, "insn_count: option %s is not key=value\n", argv[i]);
            return -1;
        }
        if (g_strcmp0(kv[0], "out") == 0) {
            out = fopen(kv[1], "w");
            if (!out) {
                fprintf(stderr, "insn_count: cannot write %s\n", kv[1]);
                return -1;
            }
        } else if (g_strcmp0(kv[0], "magic") == 0) {
            magic = g_ascii_strtoll(kv[1], NULL, 0);
        } else if (g_strcmp0(kv[0], "profile") == 0) {
            profile = g_strcmp0(kv[1], "on") == 0;
        } else {
            fprintf(stderr, "insn_count: unknown option %s (out=PATH, magic=N, profile=on)\n", argv[i]);
            return -1;
        }
    }
    blocks = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
