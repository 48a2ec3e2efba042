/* Unit tests for file: bounded reads, atomic writes, private key mode checks. */
#include <sys/stat.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "opendm/file.h"

struct tdir {
	char path[512];
};

static int rm_tree(const char *path)
{
	char sub[PATH_MAX];
	struct dirent *de;
	struct stat st;
	DIR *d;

	if (lstat(path, &st) == -1)
		return 0;
	if (!S_ISDIR(st.st_mode))
		return unlink(path);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		rm_tree(sub);
	}
	closedir(d);
	return rmdir(path);
}

static int setup(void **state)
{
	const char *base = getenv("ODM_TEST_TMP");
	struct tdir *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	if (base != NULL && base[0] != '\0') {
		mkdir(base, 0700);
		snprintf(t->path, sizeof(t->path), "%s/file.XXXXXX", base);
	} else
		snprintf(t->path, sizeof(t->path), "/tmp/odm-file.XXXXXX");
	if (mkdtemp(t->path) == NULL) {
		free(t);
		return -1;
	}
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct tdir *t = *state;

	rm_tree(t->path);
	free(t);
	return 0;
}

static void mkpath(char *out, size_t len, void **state, const char *name)
{
	struct tdir *t = *state;

	snprintf(out, len, "%s/%s", t->path, name);
}

static void put(const char *path, const char *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

/* Entries in the directory other than . and .. */
static int count_entries(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void test_read_ok(void **state)
{
	char p[PATH_MAX], err[256];
	size_t len = 99;
	char *b;

	mkpath(p, sizeof(p), state, "a.txt");
	put(p, "hello\0world", 11, 0644);
	b = file_read(p, 100, &len, err, sizeof(err));
	assert_non_null(b);
	assert_int_equal(len, 11);
	assert_memory_equal(b, "hello\0world", 11);
	assert_int_equal(b[11], '\0');
	free(b);

	/* len is optional. */
	b = file_read(p, 100, NULL, err, sizeof(err));
	assert_non_null(b);
	free(b);
}

static void test_read_empty(void **state)
{
	char p[PATH_MAX], err[256];
	size_t len = 99;
	char *b;

	mkpath(p, sizeof(p), state, "empty");
	put(p, "", 0, 0600);
	b = file_read(p, 0, &len, err, sizeof(err));
	assert_non_null(b);
	assert_int_equal(len, 0);
	assert_int_equal(b[0], '\0');
	free(b);
}

static void test_read_limit(void **state)
{
	char p[PATH_MAX], err[512], want[PATH_MAX + 64];
	size_t len = 99;
	char *b;

	mkpath(p, sizeof(p), state, "ten");
	put(p, "0123456789", 10, 0600);
	b = file_read(p, 10, &len, err, sizeof(err));
	assert_non_null(b);
	assert_int_equal(len, 10);
	free(b);

	b = file_read(p, 9, &len, err, sizeof(err));
	assert_null(b);
	assert_int_equal(len, 0);
	snprintf(want, sizeof(want), "%s: file is larger than 9 bytes", p);
	assert_string_equal(err, want);
}

static void test_read_missing(void **state)
{
	char p[PATH_MAX], err[512], want[PATH_MAX + 64];

	mkpath(p, sizeof(p), state, "nope");
	assert_null(file_read(p, 100, NULL, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: %s", p, strerror(ENOENT));
	assert_string_equal(err, want);
	/* No buffer: the message goes to the log instead; must not crash. */
	assert_null(file_read(p, 100, NULL, NULL, 0));
}

static void test_read_not_regular(void **state)
{
	struct tdir *t = *state;
	char p[PATH_MAX], err[512], want[PATH_MAX + 64];

	assert_null(file_read(t->path, 100, NULL, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: not a regular file", t->path);
	assert_string_equal(err, want);

	/* A FIFO must be refused, not block the reader forever. */
	mkpath(p, sizeof(p), state, "fifo");
	assert_int_equal(mkfifo(p, 0600), 0);
	assert_null(file_read(p, 100, NULL, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: not a regular file", p);
	assert_string_equal(err, want);
}

static void test_write_new_and_replace(void **state)
{
	struct tdir *t = *state;
	char p[PATH_MAX], err[256];
	struct stat st;
	size_t len;
	char *b;
	mode_t old = umask(077);

	mkpath(p, sizeof(p), state, "out.json");
	assert_int_equal(file_write_atomic(p, "first", 5, 0644, err, sizeof(err)), 0);
	umask(old);
	assert_int_equal(stat(p, &st), 0);
	/* The mode asked for, whatever the umask. */
	assert_int_equal(st.st_mode & 07777, 0644);
	b = file_read(p, 100, &len, err, sizeof(err));
	assert_non_null(b);
	assert_string_equal(b, "first");
	free(b);

	assert_int_equal(file_write_atomic(p, "second!", 7, 0600, err, sizeof(err)), 0);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	b = file_read(p, 100, &len, err, sizeof(err));
	assert_non_null(b);
	assert_int_equal(len, 7);
	assert_string_equal(b, "second!");
	free(b);
	/* No temporary file left behind. */
	assert_int_equal(count_entries(t->path), 1);

	assert_int_equal(file_write_atomic(p, "", 0, 0600, err, sizeof(err)), 0);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 0);
}

static void test_write_relative(void **state)
{
	struct tdir *t = *state;
	char cwd[PATH_MAX], p[600], err[256];
	struct stat st;
	int rc;

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(t->path), 0);
	rc = file_write_atomic("rel.txt", "x", 1, 0600, err, sizeof(err));
	assert_int_equal(chdir(cwd), 0);
	assert_int_equal(rc, 0);
	assert_int_equal(count_entries(t->path), 1);
	snprintf(p, sizeof(p), "%s/rel.txt", t->path);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 1);
}

static void test_write_fail(void **state)
{
	struct tdir *t = *state;
	char p[PATH_MAX], err[512];

	/* Directory missing: nothing can be created. */
	mkpath(p, sizeof(p), state, "no/such/dir/f");
	assert_int_equal(file_write_atomic(p, "x", 1, 0600, err, sizeof(err)), -1);
	assert_non_null(strstr(err, p));

	/* The rename fails (target is a directory): the temp file must be removed. */
	mkpath(p, sizeof(p), state, "adir");
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(file_write_atomic(p, "x", 1, 0600, err, sizeof(err)), -1);
	assert_non_null(strstr(err, p));
	assert_non_null(strstr(err, "rename"));
	assert_int_equal(count_entries(t->path), 1);

	/* A path that names no file. */
	mkpath(p, sizeof(p), state, "");
	assert_int_equal(file_write_atomic(p, "x", 1, 0600, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a file name"));
	assert_int_equal(file_write_atomic(p, "x", 1, 0600, NULL, 0), -1);
}

static void test_private(void **state)
{
	struct tdir *t = *state;
	char p[PATH_MAX], err[512], want[PATH_MAX + 128];

	mkpath(p, sizeof(p), state, "key.pem");
	put(p, "k", 1, 0600);
	assert_int_equal(file_check_private(p, err, sizeof(err)), 0);
	assert_int_equal(chmod(p, 0400), 0);
	assert_int_equal(file_check_private(p, err, sizeof(err)), 0);

	assert_int_equal(chmod(p, 0644), 0);
	assert_int_equal(file_check_private(p, err, sizeof(err)), -1);
	snprintf(want, sizeof(want),
	         "%s: private key is readable by group or others (mode 0644); chmod 600 it", p);
	assert_string_equal(err, want);

	assert_int_equal(chmod(p, 0640), 0);
	assert_int_equal(file_check_private(p, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "(mode 0640)"));
	assert_int_equal(chmod(p, 0602), 0);
	assert_int_equal(file_check_private(p, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "(mode 0602)"));

	assert_int_equal(file_check_private(t->path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: not a regular file", t->path);
	assert_string_equal(err, want);

	mkpath(p, sizeof(p), state, "missing.pem");
	assert_int_equal(file_check_private(p, err, sizeof(err)), -1);
	assert_non_null(strstr(err, p));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_read_ok, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_empty, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_missing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_not_regular, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_new_and_replace, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_relative, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_fail, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_private, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
