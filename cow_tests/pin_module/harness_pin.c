// SPDX-License-Identifier: GPL-2.0
/*
 * harness_pin: long-term page pins on demand, for kernels built without
 * CONFIG_GUP_TEST (every distro kernel). /sys/kernel/debug/harness_pin answers
 * the part of the gup_test ioctl interface (include/uapi-less mm/gup_test.h:
 * numbers and layouts) that cow_tests/cow_gup.c uses, so the same cases run on
 * either pinner:
 *
 *   START (7)  pin [addr, addr + size) with FOLL_LONGTERM, plus FOLL_WRITE for
 *              flag 1, through GUP-fast for flag 2 (pin_user_pages_fast) or
 *              the GUP slow path (pin_user_pages under mmap_lock); all or
 *              nothing.
 *   READ (9)   copy what the pinned pages hold (through the pins, not the
 *              mapping) to a user buffer of size bytes.
 *   STOP (8)   unpin.
 *   BENCHMARK (3)  pin as much of a range as GUP grants (FOLL_LONGTERM, and
 *              FOLL_WRITE if gup_flags has bit 0), report how much in size,
 *              unpin.
 *
 * One pinned range per open file; closing the file unpins it. Root only
 * (debugfs, mode 0600). Written for the harness; not the kernel's gup_test.
 */
#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/version.h>

struct hp_range {
	__u64 addr;
	__u64 size;
	__u32 flags;
};

struct hp_bench {
	__u64 get_delta_usec;
	__u64 put_delta_usec;
	__u64 addr;
	__u64 size;
	__u32 nr_pages_per_call;
	__u32 gup_flags;
	__u32 test_flags;
	__u32 which_pages[8];
};

#define HP_BENCHMARK	_IOWR('g', 3, struct hp_bench)
#define HP_START	_IOW('g', 7, struct hp_range)
#define HP_STOP		_IO('g', 8)
#define HP_READ		_IOW('g', 9, __u64)
#define HP_FLAG_WRITE	1
#define HP_FLAG_FAST	2
#define HP_GUP_WRITE	1

/* Large enough for two 1 GiB hugetlb pages; the page array is 8 bytes a page. */
#define HP_MAX_BYTES	(2ULL * SZ_1G)

struct hp_file {
	struct mutex lock;
	struct page **pages;
	unsigned long nr;
};

static struct dentry *hp_dentry;

static bool hp_range_ok(__u64 addr, __u64 size)
{
	return size && size <= HP_MAX_BYTES && PAGE_ALIGNED(addr) && PAGE_ALIGNED(size) &&
	       addr + size > addr;
}

/*
 * The slow path. Not pin_user_pages_unlocked(): on 6.1 it refuses FOLL_LONGTERM
 * (WARN_ON_ONCE and -EINVAL, seen on 6.1). pin_user_pages() lost its vmas argument in 6.5.
 */
static long hp_pin_slow(unsigned long addr, unsigned long nr, unsigned int gup_flags,
			struct page **pages)
{
	long ret;

	mmap_read_lock(current->mm);
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 5, 0)
	ret = pin_user_pages(addr, nr, gup_flags, pages, NULL);
#else
	ret = pin_user_pages(addr, nr, gup_flags, pages);
#endif
	mmap_read_unlock(current->mm);
	return ret;
}

static long hp_pin(unsigned long addr, unsigned long nr, unsigned int gup_flags, bool fast,
		   struct page **pages)
{
	if (fast)
		return pin_user_pages_fast(addr, nr, gup_flags, pages);
	return hp_pin_slow(addr, nr, gup_flags, pages);
}

static void hp_unpin(struct hp_file *f)
{
	if (!f->pages)
		return;
	unpin_user_pages(f->pages, f->nr);
	kvfree(f->pages);
	f->pages = NULL;
	f->nr = 0;
}

static long hp_start(struct hp_file *f, void __user *arg)
{
	unsigned int gup_flags = FOLL_LONGTERM;
	unsigned long nr, done = 0;
	struct hp_range r;
	struct page **pages;
	long ret;

	if (copy_from_user(&r, arg, sizeof(r)))
		return -EFAULT;
	if (f->pages)
		return -EBUSY;
	if ((r.flags & ~(HP_FLAG_WRITE | HP_FLAG_FAST)) || !hp_range_ok(r.addr, r.size))
		return -EINVAL;
	if (r.flags & HP_FLAG_WRITE)
		gup_flags |= FOLL_WRITE;
	nr = r.size >> PAGE_SHIFT;
	pages = kvcalloc(nr, sizeof(*pages), GFP_KERNEL);
	if (!pages)
		return -ENOMEM;
	while (done < nr) {
		ret = hp_pin(r.addr + done * PAGE_SIZE, nr - done, gup_flags,
			     r.flags & HP_FLAG_FAST, pages + done);
		if (ret <= 0) {
			unpin_user_pages(pages, done);
			kvfree(pages);
			return ret ? ret : -EFAULT;
		}
		done += ret;
	}
	f->pages = pages;
	f->nr = nr;
	return 0;
}

static long hp_read(struct hp_file *f, void __user *arg)
{
	unsigned long i;
	__u64 dst;

	if (copy_from_user(&dst, arg, sizeof(dst)))
		return -EFAULT;
	if (!f->pages)
		return -EINVAL;
	for (i = 0; i < f->nr; i++) {
		void *src = kmap_local_page(f->pages[i]);
		unsigned long left = copy_to_user(u64_to_user_ptr(dst + i * PAGE_SIZE), src, PAGE_SIZE);

		kunmap_local(src);
		if (left)
			return -EFAULT;
		cond_resched();
	}
	return 0;
}

static long hp_benchmark(void __user *arg)
{
	unsigned int gup_flags = FOLL_LONGTERM;
	unsigned long nr, per_call, done = 0;
	struct page **pages;
	struct hp_bench b;
	long ret;

	if (copy_from_user(&b, arg, sizeof(b)))
		return -EFAULT;
	if (!hp_range_ok(b.addr, b.size))
		return -EINVAL;
	if (b.gup_flags & HP_GUP_WRITE)
		gup_flags |= FOLL_WRITE;
	nr = b.size >> PAGE_SHIFT;
	per_call = b.nr_pages_per_call ? b.nr_pages_per_call : nr;
	pages = kvcalloc(nr, sizeof(*pages), GFP_KERNEL);
	if (!pages)
		return -ENOMEM;
	while (done < nr) {
		ret = hp_pin_slow(b.addr + done * PAGE_SIZE, min(per_call, nr - done), gup_flags,
				  pages + done);
		if (ret <= 0)
			break;
		done += ret;
	}
	unpin_user_pages(pages, done);
	kvfree(pages);
	b.size = (__u64)done << PAGE_SHIFT;
	return copy_to_user(arg, &b, sizeof(b)) ? -EFAULT : 0;
}

static long hp_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct hp_file *f = file->private_data;
	void __user *uarg = (void __user *)arg;
	long ret;

	mutex_lock(&f->lock);
	switch (cmd) {
	case HP_START:
		ret = hp_start(f, uarg);
		break;
	case HP_STOP:
		hp_unpin(f);
		ret = 0;
		break;
	case HP_READ:
		ret = hp_read(f, uarg);
		break;
	case HP_BENCHMARK:
		ret = hp_benchmark(uarg);
		break;
	default:
		ret = -ENOTTY;
	}
	mutex_unlock(&f->lock);
	return ret;
}

static int hp_open(struct inode *inode, struct file *file)
{
	struct hp_file *f = kzalloc(sizeof(*f), GFP_KERNEL);

	if (!f)
		return -ENOMEM;
	mutex_init(&f->lock);
	file->private_data = f;
	return nonseekable_open(inode, file);
}

static int hp_release(struct inode *inode, struct file *file)
{
	struct hp_file *f = file->private_data;

	hp_unpin(f);
	kfree(f);
	return 0;
}

static const struct file_operations hp_fops = {
	.owner = THIS_MODULE,
	.open = hp_open,
	.release = hp_release,
	.unlocked_ioctl = hp_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

static int __init hp_init(void)
{
	hp_dentry = debugfs_create_file("harness_pin", 0600, NULL, NULL, &hp_fops);
	return IS_ERR(hp_dentry) ? PTR_ERR(hp_dentry) : 0;
}

static void __exit hp_exit(void)
{
	debugfs_remove(hp_dentry);
}

module_init(hp_init);
module_exit(hp_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("harness: long-term page pins through debugfs, for COW / pinning tests");
