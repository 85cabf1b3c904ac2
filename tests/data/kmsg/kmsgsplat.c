// Test-data generator for harness/judge/kmsg.py: makes the real kernel print its real reports.
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/uaccess.h>
#include <linux/slab.h>
#include <linux/delay.h>
#include <linux/kfence.h>
#include <linux/sched.h>

static noinline void splat_warn(void) { WARN(1, "kmsgsplat: WARN with a message, value=%d\n", 42); }
static noinline void splat_warn_on(void) { WARN_ON(1); }
static noinline void splat_bug(void) { BUG(); }
static noinline void splat_null(void) { *(volatile int *)NULL = 1; }
static noinline void splat_gpf(void) { (void)*(volatile long *)0xdead000000000100UL; }
static noinline void splat_paging(void) { (void)*(volatile long *)0xffffc9ffdead0000UL; }
static noinline void splat_atomic(void) { preempt_disable(); msleep(10); preempt_enable(); }
static noinline void splat_spin(unsigned int s) { preempt_disable(); mdelay(s * 1000); preempt_enable(); }
static noinline void splat_irqspin(unsigned int s) { unsigned long f; local_irq_save(f); mdelay(s * 1000); local_irq_restore(f); }
static noinline void splat_kfence(void)
{
	int i;
	for (i = 0; i < 200000; i++) {
		char *p = kmalloc(32, GFP_KERNEL);
		if (!p) return;
		if (is_kfence_address(p)) {
			kfree(p);
			pr_info("kmsgsplat: kfence object after %d tries\n", i);
			(void)READ_ONCE(p[3]);
			return;
		}
		kfree(p);
		if (i % 1000 == 0) msleep(1);
	}
	pr_info("kmsgsplat: no kfence object\n");
}
static noinline void splat_redzone(void)
{
	char *p = kmalloc(64, GFP_KERNEL);
	if (!p) return;
	((volatile char *)p)[64] = 0x55;
	kfree(p);
}

static ssize_t splat_write(struct file *f, const char __user *ubuf, size_t n, loff_t *off)
{
	char buf[32] = {0};
	unsigned int s = 0;
	if (copy_from_user(buf, ubuf, min(n, sizeof(buf) - 1)))
		return -EFAULT;
	if (!strncmp(buf, "warn_on", 7)) splat_warn_on();
	else if (!strncmp(buf, "warn", 4)) splat_warn();
	else if (!strncmp(buf, "bug", 3)) splat_bug();
	else if (!strncmp(buf, "null", 4)) splat_null();
	else if (!strncmp(buf, "gpf", 3)) splat_gpf();
	else if (!strncmp(buf, "paging", 6)) splat_paging();
	else if (!strncmp(buf, "atomic", 6)) splat_atomic();
	else if (sscanf(buf, "spin %u", &s) == 1) splat_spin(s);
	else if (sscanf(buf, "irqspin %u", &s) == 1) splat_irqspin(s);
	else if (!strncmp(buf, "kfence", 6)) splat_kfence();
	else if (!strncmp(buf, "redzone", 7)) splat_redzone();
	else return -EINVAL;
	return n;
}

static const struct proc_ops splat_ops = { .proc_write = splat_write };
static struct proc_dir_entry *entry;
static int __init splat_init(void) { entry = proc_create("kmsgsplat", 0200, NULL, &splat_ops); return entry ? 0 : -ENOMEM; }
static void __exit splat_exit(void) { proc_remove(entry); }
module_init(splat_init);
module_exit(splat_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("make the kernel print real splats, for parser test data");
