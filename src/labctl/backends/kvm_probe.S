/* labctl KVM probe firmware (see kvm_probe.py): a flat 64 KiB BIOS image whose reset vector
   switches to 32-bit protected mode, then to 64-bit long mode with paging, then writes
   0x31 to isa-debug-exit (qemu exits 99).
   Build: as --32 -o p.o kvm_probe.S && ld -m elf_i386 -Ttext 0 -e 0 --oformat binary -o p.bin p.o */
    .code16
    .org 0
start16:
    cli
    xorw %ax, %ax
    movw %ax, %ds
    /* GDT descriptor lives in this ROM segment at F000:gdtr; load via cs override */
    lgdtl %cs:gdtr
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x08, $(0xF0000 + start32)
    .code32
start32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    /* page tables at 0x1000 (PML4), 0x2000 (PDPT), 0x3000 (PD): identity map 2 MiB */
    movl $0x1000, %edi
    xorl %eax, %eax
    movl $3072, %ecx
    rep stosl
    movl $0x2003, 0x1000
    movl $0x3003, 0x2000
    movl $0x00000083, 0x3000
    movl %cr4, %eax
    orl $0x20, %eax        /* PAE */
    movl %eax, %cr4
    movl $0x1000, %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx /* EFER */
    rdmsr
    orl $0x100, %eax       /* LME */
    wrmsr
    movl %cr0, %eax
    orl $0x80000000, %eax  /* PG */
    movl %eax, %cr0
    ljmpl $0x18, $(0xF0000 + start64)
    .code64
start64:
    movb $0x31, %al
    outb %al, $0xf4
1:  hlt
    jmp 1b
    .align 8
gdt:
    .quad 0
    .quad 0x00cf9a000000ffff   /* 0x08 code32 */
    .quad 0x00cf92000000ffff   /* 0x10 data */
    .quad 0x00af9a000000ffff   /* 0x18 code64 */
gdtr:
    .word gdtr - gdt - 1
    .long 0xF0000 + gdt
    .org 0xFFF0
reset:
    .code16
    ljmp $0xF000, $start16
    .org 0x10000
