// SPDX-License-Identifier: GPL-2.0
/*
 * The fault drill's kernel WARN: stock distro kernels have no LKDTM, so this module gives the
 * drill a real WARNING from the running kernel. Writing anything to /proc/harness_warn makes
 * the kernel print one WARN() report (and taint itself with W); nothing else happens.
 */
#include <linux/module.h>
#include <linux/proc_fs.h>

static ssize_t harness_warn_write(struct file *file, const char __user *buf, size_t len,
				  loff_t *pos)
{
	WARN(1, "harness: deliberate warning from the fault drill\n");
	return len;
}

static const struct proc_ops harness_warn_ops = { .proc_write = harness_warn_write };
static struct proc_dir_entry *harness_warn_entry;

static int __init harness_warn_init(void)
{
	harness_warn_entry = proc_create("harness_warn", 0200, NULL, &harness_warn_ops);
	return harness_warn_entry ? 0 : -ENOMEM;
}

static void __exit harness_warn_exit(void)
{
	proc_remove(harness_warn_entry);
}

module_init(harness_warn_init);
module_exit(harness_warn_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("harness fault drill: a real kernel WARN on demand");
