// every 50 ms: fixed work (pointer chase over 16 MiB + ALU), print wall-clock time and the thread CPU ns it took
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#define SZ (4u<<20)
static double now(clockid_t c){struct timespec t;clock_gettime(c,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){double dur=atof(argv[1]); uint32_t*a=malloc(SZ*4); for(uint32_t i=0;i<SZ;i++)a[i]=i; srand(1);
 for(uint32_t i=SZ-1;i>0;i--){uint32_t j=((uint64_t)rand()*rand())%i;uint32_t t=a[i];a[i]=a[j];a[j]=t;}
 double end=now(CLOCK_REALTIME)+dur; uint32_t at=0; volatile uint64_t sink=0;
 while(now(CLOCK_REALTIME)<end){double c0=now(CLOCK_THREAD_CPUTIME_ID); uint64_t x=88172645463325252ULL,h=0;
  for(int k=0;k<20000;k++){at=a[at];} for(int k=0;k<200000;k++){x^=x<<13;x^=x>>7;x^=x<<17;h+=x;} sink+=h+at;
  double c1=now(CLOCK_THREAD_CPUTIME_ID); printf("%.4f %.1f\n", now(CLOCK_REALTIME), (c1-c0)*1e6); fflush(stdout); usleep(50000);}
}
