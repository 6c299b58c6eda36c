// The kernel's share of forwarding on this machine: what a bare C sender pays per UDP datagram delivered
// over loopback to 100 sockets of another process that sleeps in epoll between packets, as the load
// generator's sockets do. No crypto, no parsing: the floor under any media plane's "µs per forwarded packet".
// Output: one JSON object per mode on stdout. Built and run by bench/udp-floor.ts.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SOCKETS 100
#define RATE 5000.0
#define PACKETS 50000

static double cpuSeconds(int who) {
  struct rusage r;
  getrusage(who, &r);
  return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}

static void run(int burst, int useMmsg) {
  int rx[SOCKETS];
  struct sockaddr_in addr[SOCKETS];
  for (int i = 0; i < SOCKETS; i++) {
    rx[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    memset(&addr[i], 0, sizeof addr[i]);
    addr[i].sin_family = AF_INET;
    addr[i].sin_addr.s_addr = htonl(0x7f000001);
    bind(rx[i], (struct sockaddr*)&addr[i], sizeof addr[i]);
    socklen_t l = sizeof addr[i];
    getsockname(rx[i], (struct sockaddr*)&addr[i], &l);
  }
  int report[2];
  if (pipe(report) != 0) exit(1);
  pid_t child = fork();
  if (child == 0) {
    int ep = epoll_create1(0);
    for (int i = 0; i < SOCKETS; i++) {
      struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
      epoll_ctl(ep, EPOLL_CTL_ADD, rx[i], &e);
    }
    char b[2048];
    struct epoll_event ev[64];
    long got = 0;
    while (got < PACKETS) {
      int n = epoll_wait(ep, ev, 64, 2000);
      if (n <= 0) break;
      for (int k = 0; k < n; k++)
        while (recv(rx[ev[k].data.u32], b, sizeof b, 0) > 0) got++;
    }
    double c = cpuSeconds(RUSAGE_SELF);
    if (write(report[1], &c, sizeof c) != sizeof c) _exit(1);
    if (write(report[1], &got, sizeof got) != sizeof got) _exit(1);
    _exit(0);
  }
  int tx = socket(AF_INET, SOCK_DGRAM, 0);
  char payload[200];
  memset(payload, 1, sizeof payload);
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  usleep(100000);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  double c0 = cpuSeconds(RUSAGE_SELF);
  int sent = 0, dst = 0;
  while (sent < PACKETS) {
    if (useMmsg) {
      struct mmsghdr m[64];
      struct iovec v[64];
      for (int k = 0; k < burst; k++) {
        v[k].iov_base = payload;
        v[k].iov_len = 180;
        memset(&m[k], 0, sizeof m[k]);
        m[k].msg_hdr.msg_iov = &v[k];
        m[k].msg_hdr.msg_iovlen = 1;
        m[k].msg_hdr.msg_name = &addr[(dst + k) % SOCKETS];
        m[k].msg_hdr.msg_namelen = sizeof addr[0];
      }
      sendmmsg(tx, m, burst, 0);
    } else {
      for (int k = 0; k < burst; k++)
        sendto(tx, payload, 180, 0, (struct sockaddr*)&addr[(dst + k) % SOCKETS], sizeof addr[0]);
    }
    dst = (dst + burst) % SOCKETS;
    sent += burst;
    // Absolute pacing at RATE packets/s, as the load generator paces.
    struct timespec due = t0;
    long ns = (long)((double)sent / RATE * 1e9);
    due.tv_sec += ns / 1000000000;
    due.tv_nsec += ns % 1000000000;
    if (due.tv_nsec >= 1000000000) {
      due.tv_sec++;
      due.tv_nsec -= 1000000000;
    }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL);
  }
  double senderUs = (cpuSeconds(RUSAGE_SELF) - c0) / sent * 1e6;
  double childCpu = 0;
  long got = 0;
  if (read(report[0], &childCpu, sizeof childCpu) != sizeof childCpu) childCpu = -1;
  if (read(report[0], &got, sizeof got) != sizeof got) got = 0;
  waitpid(child, NULL, 0);
  printf("{\"burst\":%d,\"call\":\"%s\",\"packets\":%d,\"received\":%ld,\"senderUsPerPacket\":%.2f,"
         "\"receiverUsPerPacket\":%.2f}\n",
         burst, useMmsg ? "sendmmsg" : "sendto", sent, got, senderUs, got > 0 ? childCpu / got * 1e6 : -1.0);
  fflush(stdout);
  close(tx);
  for (int i = 0; i < SOCKETS; i++) close(rx[i]);
  close(report[0]);
  close(report[1]);
}

int main(void) {
  run(1, 0);
  run(10, 0);
  run(10, 1);
  return 0;
}
