/* testutil: file-system helpers shared by the unit tests (see testutil.h). */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

int tu_mkdir_p(const char *path)
{
	char buf[512];
	char *p;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -1;
	for (p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) == -1 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, 0700) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

static int tu_rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void tu_rmtree(const char *dir)
{
	nftw(dir, tu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int tu_tmpdir(char *buf, size_t len, const char *name)
{
	const char *base = getenv("ODM_TEST_TMP");
	int n;

	if (base == NULL || base[0] == '\0')
		base = "/tmp";
	if (tu_mkdir_p(base) == -1)
		return -1;
	n = snprintf(buf, len, "%s/%s.XXXXXX", base, name);
	if (n < 0 || (size_t)n >= len || mkdtemp(buf) == NULL)
		return -1;
	return 0;
}
