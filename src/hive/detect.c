/*
 * detect.c - which compute backends this node has.
 *
 * DESIGN
 * The CPU is always there (one device, with its physical core count) and is the only backend
 * offered: llm-worker-rbee computes on the CPU. GPUs are still looked for (CUDA when
 * nvidia-smi is on PATH and lists at least one; Metal on macOS) and reported as found but not
 * served, so a request for them gets 503 BACKEND_UNAVAILABLE with the available list rather
 * than a worker that fails to start. Detection runs once when the daemon starts (before any
 * thread reaps children, since nvidia-smi is a child process) and again for each
 * `rbee-hive detect`.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hive.h"
#include "rb_json.h"
#include "rb_util.h"

#define NVIDIA_SMI_QUERY "nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null"

static void add(hive_backends *b, const char *name, int devices)
{
    if (b->n == HIVE_MAX_BACKENDS || devices <= 0)
        return;
    snprintf(b->name[b->n], sizeof b->name[b->n], "%s", name);
    b->devices[b->n] = devices;
    b->n++;
}

/* 1 when an executable named prog is on PATH. */
static int on_path(const char *prog)
{
    const char *path = getenv("PATH");
    char dir[4096], full[4200];
    struct stat st;
    int found = 0;

    while (path && *path && !found) {
        size_t n = strcspn(path, ":");
        snprintf(dir, sizeof dir, "%.*s", (int)n, path);
        snprintf(full, sizeof full, "%s/%s", n ? dir : ".", prog);
        found = stat(full, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111);
        path += n + (path[n] == ':');
    }
    return found;
}

/* GPUs listed by nvidia-smi (0 when it is absent or fails). */
static int cuda_devices(void)
{
    char line[256];
    int n = 0;
    FILE *p = on_path("nvidia-smi") ? popen(NVIDIA_SMI_QUERY, "r") : NULL;

    while (p && fgets(line, sizeof line, p))
        if (line[0] != '\n' && line[0] != '\0')
            n++;
    if (p && pclose(p) != 0)
        n = 0;
    return n;
}

static void add_unserved(hive_backends *b, const char *name, int devices)
{
    if (b->unserved_n == HIVE_MAX_BACKENDS || devices <= 0)
        return;
    snprintf(b->unserved_name[b->unserved_n], sizeof b->unserved_name[0], "%s", name);
    b->unserved_devices[b->unserved_n] = devices;
    b->unserved_n++;
}

void hive_detect(hive_backends *out)
{
    memset(out, 0, sizeof(*out));
    out->cpu_cores = rb_physical_cores();
    add(out, "cpu", 1);
    add_unserved(out, "cuda", cuda_devices());
#ifdef __APPLE__
    add_unserved(out, "metal", 1);
#endif
}

int hive_backends_find(const hive_backends *b, const char *name)
{
    int found = -1;
    for (int i = 0; i < b->n && found < 0; i++)
        if (strcmp(b->name[i], name) == 0)
            found = i;
    return found;
}

static rb_err print_json(FILE *out, const hive_backends *b)
{
    json_t *backends = json_array(), *devices = json_object(), *j;
    char *s;
    rb_err rc = RB_OK;

    for (int i = 0; i < b->n; i++) {
        json_array_append_new(backends, json_string(b->name[i]));
        json_object_set_new(devices, b->name[i], json_integer(b->devices[i]));
    }
    j = json_pack("{s:o, s:o}", "backends", backends, "devices", devices);
    if (b->unserved_n > 0) {
        json_t *un = json_object();
        for (int i = 0; i < b->unserved_n; i++)
            json_object_set_new(un, b->unserved_name[i], json_integer(b->unserved_devices[i]));
        json_object_set_new(j, "found_not_served", un);
    }
    s = rb_json_dump(j);
    if (!s || fprintf(out, "%s\n", s) < 0)
        rc = RB_EIO;
    free(s);
    json_decref(j);
    return rc;
}

static rb_err print_table(FILE *out, const hive_backends *b)
{
    rb_err rc = RB_OK;

    if (fprintf(out, "%-8s %-8s %s\n", "BACKEND", "DEVICES", "DETAIL") < 0)
        rc = RB_EIO;
    for (int i = 0; i < b->n; i++) {
        char detail[64] = "";
        if (strcmp(b->name[i], "cpu") == 0)
            snprintf(detail, sizeof detail, "%d cores", b->cpu_cores);
        if (fprintf(out, "%-8s %-8d %s\n", b->name[i], b->devices[i], detail) < 0)
            rc = RB_EIO;
    }
    for (int i = 0; i < b->unserved_n; i++)
        if (fprintf(out, "%-8s %-8d %s\n", b->unserved_name[i], b->unserved_devices[i],
                    "found, not served: the worker computes on the CPU only") < 0)
            rc = RB_EIO;
    return rc;
}

rb_err hive_detect_print(FILE *out, const hive_backends *b, int as_json)
{
    return as_json ? print_json(out, b) : print_table(out, b);
}
